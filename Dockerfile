# syntax=docker/dockerfile:1
#
# cbctl and the demo, as static binaries in a distroless image.
#
#   docker build -t tripline-demo:local --build-arg VERSION=$(git describe --always) .
#
# docker-compose.yml builds it and picks the binary per service with
# entrypoint: /usr/local/bin/demo or /usr/local/bin/cbctl.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so a code change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/cbctl ./cmd/cbctl \
 && go build -trimpath -ldflags="-s -w" -o /out/demo ./cmd/demo

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/cbctl /out/demo /usr/local/bin/
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/demo"]
