#!/usr/bin/env bash
# Runs every Go fuzz target for a few seconds (their seed corpora already run
# as plain tests in `go test ./...`).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZTIME:-5s}"
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "fuzz $pkg $target ($secs)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$secs" "$pkg"
  done
done
