#!/usr/bin/env bash
# run.sh runs tripline's benchmarks side by side with sony/gobreaker v2 and
# summarises them with benchstat.
#
#   bench/run.sh [out.txt]  raw results go to out.txt (default
#                           bench/results.txt), benchstat's summary to
#                           out-benchstat.txt, the Markdown tables (medians,
#                           ratios, allocs) to out-table.txt (in-memory
#                           benchmarks) and out-redis-table.txt
#                           (BenchmarkRedis: ops/s, latency, commands per
#                           call, propagation, memory per circuit)
#
#   BENCH=Redis ROUNDS=8 BENCHTIME=0.5s bench/run.sh redis.txt
#                           the Redis run of BENCHMARKS.md
#
# Environment: ROUNDS (default 10) x COUNT (default 1) samples per benchmark,
# BENCH (default .) the -bench regexp, BENCHTIME (default 1s).
# One test binary runs every round. Rounds of -count 1 interleave the
# contenders so that load from elsewhere on the machine falls on all of them
# alike; ROUNDS=1 COUNT=10 runs exactly
#   go test -run XXX -bench . -benchmem -count 10 ./...
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-results.txt}
base=${out%.txt}
rounds=${ROUNDS:-10} count=${COUNT:-1} bench=${BENCH:-.} benchtime=${BENCHTIME:-1s}
benchstat=(go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da)

bin=$(mktemp -d)/bench.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
# Record what was measured: the main module's commit, "+dirty" if a
# tracked non-test Go file or go.mod of it differs from that commit
# (TRIPLINE_COMMIT overrides, for a tree without .git).
commit=${TRIPLINE_COMMIT:-$(git -C .. rev-parse --short HEAD 2>/dev/null || echo unknown)}
if [[ -z ${TRIPLINE_COMMIT:-} ]] &&
	! git -C .. diff --quiet HEAD -- '*.go' go.mod ':!*_test.go' ':!bench' 2>/dev/null; then
	commit+=+dirty
fi
go test -c -o "$bin" .
{
	echo "tripline-commit: $commit"
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "go: $(go env GOVERSION)"
	echo "nproc: $(nproc)"
	echo "redis-server: $(redis-server --version 2>/dev/null || echo missing)"
} >"$out"
# A round whose binary fails (a benchmark's check found its contender off
# its path) loses only that benchmark's sample; the others are kept, the
# failure is in the output, and run.sh exits 1 at the end.
failed=0
for ((i = 1; i <= rounds; i++)); do
	echo "round $i/$rounds" >&2
	if ! "$bin" -test.run XXX -test.bench "$bench" -test.benchmem -test.count "$count" \
		-test.benchtime "$benchtime" | tee -a "$out"; then
		failed=$((failed + 1))
		echo "round $i/$rounds: FAILED (see the output above)" >&2
	fi
done
"${benchstat[@]}" -col /impl "$out" | tee "$base-benchstat.txt"
if grep -q '^Benchmark' <(grep -v '^BenchmarkRedis/' "$out"); then
	mem=$(dirname "$bin")/memory.txt
	grep -v '^BenchmarkRedis/' "$out" >"$mem"
	"${benchstat[@]}" -format csv -col /impl "$mem" 2>/dev/null | awk -f table.awk | tee "$base-table.txt"
fi
if grep -q '^BenchmarkRedis/' "$out"; then
	awk -f redis-table.awk "$out" | tee "$base-redis-table.txt"
fi
if ((failed > 0)); then
	echo "$failed of $rounds rounds failed" >&2
	exit 1
fi
