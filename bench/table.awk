# table.awk turns `benchstat -format csv -col /impl` output into Markdown
# tables, one for wall time (sec/op) and one for CPU time (cpu-sec/op): per
# benchmark row and implementation, the median ns per call, the ratio of
# ops/s to the first column (gobreaker; >1 means faster than it) and the
# median allocs/op.
BEGIN { FS = "," }
/^(goos|goarch|pkg|cpu):/ { next }
/^$/ { hdr = 0; next }
$1 == "" && hdr == 0 { for (i = 2; i <= NF; i++) if ($i != "") name[i] = $i; hdr = 1; next }
$1 == "" && hdr == 1 {
	unit = $2; units[unit]
	for (i = 2; i <= NF; i++) { u[i] = $i; if ($i == unit && !(i in seen)) { seen[i]; col[++ncol] = i } }
	hdr = 2; next
}
hdr == 2 && $1 != "geomean" {
	sub(/-[0-9]+$/, "", $1) # the GOMAXPROCS suffix, if benchstat kept it
	if (!($1 in known)) { known[$1]; row[++nrow] = $1 }
	for (i = 2; i <= NF; i++) if (u[i] == unit && $i != "") val[$1, name[i], unit] = $i
}
function table(unit, title,   base, c, r, b, n, s) {
	base = name[col[1]]
	printf "%s\n\n| benchmark |", title
	for (c = 1; c <= ncol; c++) printf " %s |", name[col[c]]
	printf "\n|---|"
	for (c = 1; c <= ncol; c++) printf "---|"
	printf "\n"
	for (r = 1; r <= nrow; r++) {
		b = row[r]; printf "| %s |", b
		for (c = 1; c <= ncol; c++) {
			n = name[col[c]]
			if (!((b, n, unit) in val)) { printf " |"; continue }
			s = val[b, n, unit]
			printf " %.0f ns", s * 1e9
			if (c > 1 && (b, base, unit) in val) printf " **%.2fx**", val[b, base, unit] / s
			printf ", %s allocs |", val[b, n, "allocs/op"]
		}
		printf "\n"
	}
	printf "\n"
}
END {
	table("sec/op", "Wall time per call (median ns; **ratio** = ops/s vs gobreaker; allocs/op):")
	if ("cpu-sec/op" in units)
		table("cpu-sec/op", "CPU time per call (median ns of process CPU time; **ratio** vs gobreaker; allocs/op):")
}
