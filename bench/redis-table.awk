# redis-table.awk turns the raw results of BenchmarkRedis (go test -bench
# output, any number of rounds) into the Markdown tables of BENCHMARKS.md:
# per path, contender and goroutine count the median of every metric over
# the samples, then the ratios the targets of issue 5 are stated in (ratio
# of medians, and the range of the same ratio taken round by round: the
# k-th sample of each contender comes from the same round), then the
# propagation delays and the memory per circuit.
#
#   awk -f redis-table.awk results.txt
/--- FAIL: BenchmarkRedis\/.*impl=/ {
	f = $0
	sub(/^.*--- FAIL: BenchmarkRedis\//, "", f)
	sub(/ .*$/, "", f)
	sub(/-[0-9]+$/, "", f)
	if (!(f in failed)) failorder[++nfail] = f
	failed[f]++
	next
}
/^BenchmarkRedis\// && $2 ~ /^[0-9]+$/ {
	name = $1
	sub(/-[0-9]+$/, "", name) # the GOMAXPROCS suffix
	sub(/^BenchmarkRedis\//, "", name)
	row = name; impl = name
	sub(/\/impl=.*$/, "", row)
	sub(/^.*\/impl=/, "", impl)
	key = row SUBSEP impl
	if (!(key in nsamp)) { order[++nkeys] = key }
	k = ++nsamp[key]
	val[key, "N", k] = $2
	for (i = 3; i < NF; i += 2) {
		unit = $(i + 1)
		val[key, unit, k] = $i
		has[key, unit] = 1
	}
}

function median(key, unit,   n, i, j, a, t) {
	n = 0
	for (i = 1; i <= nsamp[key]; i++) if ((key, unit, i) in val) a[++n] = val[key, unit, i] + 0
	if (n == 0) return ""
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}

function maxof(key, unit,   i, m) {
	m = ""
	for (i = 1; i <= nsamp[key]; i++) if ((key, unit, i) in val && (m == "" || val[key, unit, i] + 0 > m)) m = val[key, unit, i] + 0
	return m
}

function dur(ns) {
	if (ns == "") return ""
	if (ns < 1000) return sprintf("%.0f ns", ns)
	if (ns < 1e6) return sprintf("%.1f µs", ns / 1e3)
	return sprintf("%.2f ms", ns / 1e6)
}

function rate(ns) {
	if (ns == "" || ns == 0) return ""
	ns = 1e9 / ns
	if (ns >= 1e6) return sprintf("%.2fM", ns / 1e6)
	if (ns >= 1e3) return sprintf("%.1fk", ns / 1e3)
	return sprintf("%.0f", ns)
}

function num(v) {
	if (v == "") return ""
	if (v == int(v)) return sprintf("%d", v)
	return sprintf("%.3g", v)
}

# ratio prints one line: ops/s of impl a over ops/s of impl b in row.
function ratio(row, a, b, label,   ka, kb, ma, mb, i, lo, hi, r) {
	ka = row SUBSEP a; kb = row SUBSEP b
	ma = median(ka, "ns/op"); mb = median(kb, "ns/op")
	if (ma == "" || mb == "") return
	lo = ""; hi = ""
	for (i = 1; i <= nsamp[ka] && i <= nsamp[kb]; i++) {
		r = val[kb, "ns/op", i] / val[ka, "ns/op", i]
		if (lo == "" || r < lo) lo = r
		if (hi == "" || r > hi) hi = r
	}
	printf "| %s | %s | %s vs %s | **%sx** | %s-%sx |\n", row, label, a, b, rx(mb / ma), rx(lo), rx(hi)
}

function rx(v) { return v >= 100 ? sprintf("%.0f", v) : sprintf("%.3g", v) }

END {
	if (nfail > 0) {
		print "Failed samples (the benchmark's check found the contender off its path; no figures kept from them):\n"
		for (i = 1; i <= nfail; i++) printf "- %s: %d\n", failorder[i], failed[failorder[i]]
		print ""
	}
	print "Per contender (medians over the samples; ops/s = 1e9 / median ns/op):\n"
	print "| path | contender | samples | ns/op | ops/s | cpu-ns/op | p50 | p99 | trips/op | cmds/op | allocs/op |"
	print "|---|---|---|---|---|---|---|---|---|---|---|"
	for (o = 1; o <= nkeys; o++) {
		key = order[o]
		split(key, parts, SUBSEP)
		if (parts[1] ~ /^(Propagation|Memory)/) continue
		ns = median(key, "ns/op")
		printf "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", parts[1], parts[2], nsamp[key],
			dur(ns), rate(ns), dur(median(key, "cpu-ns/op")), dur(median(key, "p50-ns")), dur(median(key, "p99-ns")),
			num(median(key, "trips/op")), num(median(key, "cmds/op")), num(median(key, "allocs/op"))
	}
	print "\nRatios of ops/s (ratio of the medians; range: the same ratio round by round):\n"
	print "| path | target | pair | ratio | per round |"
	print "|---|---|---|---|---|"
	for (o = 1; o <= nkeys; o++) {
		key = order[o]
		split(key, parts, SUBSEP)
		if (parts[2] != "ours-memory" || parts[1] !~ /^Success\//) continue
		r = parts[1]
		ratio(r, "ours-memory", "gobreaker-memory", ">= 1.0x")
		ratio(r, "ours-redis", "ours-memory", r == "Success/g=8" ? ">= 0.5x" : "")
		ratio(r, "ours-redis", "gobreaker-redis", ">= 100x")
		ratio(r, "ours-redis-strict", "redis-ping", r == "Success/g=64" ? ">= 0.4x" : "")
		ratio(r, "ours-redis", "redis-ping", "")
	}
	print "\nPropagation: from the failing call that trips the circuit on replica A returning to the first rejection on replica B (medians over the samples of each sample's quantiles over its trips; worst: the highest of the samples):\n"
	print "| contender | samples | trips (median) | p50 | p99 | worst p99 | max | B before A returned |"
	print "|---|---|---|---|---|---|---|---|"
	for (o = 1; o <= nkeys; o++) {
		key = order[o]
		split(key, parts, SUBSEP)
		if (parts[1] != "Propagation") continue
		printf "| %s | %d | %s | %s | %s | %s | %s | %.1f%% |\n", parts[2], nsamp[key], num(median(key, "N")),
			dur(median(key, "p50-ns")), dur(median(key, "p99-ns")), dur(maxof(key, "p99-ns")), dur(maxof(key, "max-ns")),
			100 * median(key, "early/op")
	}
	print "\nRedis memory per circuit, threshold 5, after the trip (medians):\n"
	print "| mode | samples | state keys (MEMORY USAGE) | every key (MEMORY USAGE) | keys | used_memory delta |"
	print "|---|---|---|---|---|---|"
	for (o = 1; o <= nkeys; o++) {
		key = order[o]
		split(key, parts, SUBSEP)
		if (parts[1] !~ /^Memory/) continue
		m = parts[1]; sub(/^Memory\/mode=/, "", m)
		printf "| %s | %d | %.0f B | %.0f B | %s | %.0f B |\n", m, nsamp[key], median(key, "state-B/circuit"),
			median(key, "all-B/circuit"), num(median(key, "keys/circuit")), median(key, "used-B/circuit")
	}
}
