# table.awk turns `benchstat -format csv -col /impl` output into a Markdown
# table: per benchmark row and implementation, the median ns/op, the median
# ops/s as a ratio to the first column (gobreaker: >1 means faster than it),
# and the median allocs/op.
BEGIN { FS = "," }
/^(goos|goarch|pkg|cpu):/ { next }
/^$/ { hdr = 0; next }
$1 == "" && hdr == 0 { for (i = 2; i <= NF; i++) if ($i != "") name[i] = $i; hdr = 1; next }
$1 == "" && hdr == 1 { unit = $2; for (i = 2; i <= NF; i++) { u[i] = $i; if ($i == unit && !(i in seen)) { seen[i]; col[++ncol] = i } }; hdr = 2; next }
hdr == 2 && $1 != "geomean" {
	if (!($1 in known)) { known[$1]; row[++nrow] = $1 }
	for (i = 2; i <= NF; i++) if (u[i] == unit && $i != "") val[$1, name[i], unit] = $i
}
END {
	base = name[col[1]]
	printf "| benchmark |"
	for (c = 1; c <= ncol; c++) printf " %s |", name[col[c]]
	printf "\n|---|"
	for (c = 1; c <= ncol; c++) printf "---|"
	printf "\n"
	for (r = 1; r <= nrow; r++) {
		b = row[r]; printf "| %s |", b
		for (c = 1; c <= ncol; c++) {
			n = name[col[c]]
			if (!((b, n, "sec/op") in val)) { printf " |"; continue }
			s = val[b, n, "sec/op"]; a = val[b, n, "allocs/op"]
			printf " %.1f ns", s * 1e9
			if (c > 1 && (b, base, "sec/op") in val) printf ", **%.2fx**", val[b, base, "sec/op"] / s
			printf ", %s allocs |", a
		}
		printf "\n"
	}
}
