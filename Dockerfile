# syntax=docker/dockerfile:1
#
# cbctl and the demo, as static binaries in a distroless image.
#
#   docker build -t tripline-demo:local --build-arg VERSION=$(git describe --always) .
#
# In docker-compose.yml the upstream service builds it and every demo
# service runs it, picking the binary with entrypoint: /usr/local/bin/demo
# or /usr/local/bin/cbctl.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY . .
ARG VERSION=dev
ENV CGO_ENABLED=0
# No `go mod download`: it fetches every module go.mod lists, the tests'
# too (compose-go, testify, rapid, goleak and theirs: 26 modules, 16 MB).
# go build fetches only the modules of the packages the binaries import
# (8 modules, 5 MB). The cache mounts keep modules and compiled packages
# from one build to the next, so a code change downloads nothing again.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/cbctl ./cmd/cbctl \
 && go build -trimpath -ldflags="-s -w" -o /out/demo ./cmd/demo

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/cbctl /out/demo /usr/local/bin/
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/demo"]
