#!/usr/bin/env bash
# Runs every Go fuzz target for a fixed number of executions (their seed
# corpora already run as plain tests in `go test ./...`).
#
# The budget is a count, not a duration: with a duration (-fuzztime 5s) Go
# 1.26's fuzz coordinator can report a spurious "context deadline exceeded"
# failure when the deadline fires while a worker is mid-call
# (golang/go#75804, fixed in Go 1.27). A count has no deadline to race.
set -euo pipefail
cd "$(dirname "$0")/.."
budget="${FUZZCOUNT:-20000}x"
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "fuzz $pkg $target ($budget)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$budget" "$pkg"
  done
done
