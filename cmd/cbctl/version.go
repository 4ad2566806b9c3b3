package main

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = ""

func versionString() string {
	info, _ := debug.ReadBuildInfo()
	return describeVersion(version, info)
}

// describeVersion is cbctl's version line: "cbctl v1.2.3 (go1.26.0)", and,
// when the binary was built from a checkout (go build stamps the vcs
// settings), the commit, its time and whether the tree had changes:
// "cbctl devel (go1.26.0, commit 46fac5f1d2e3, 2026-01-02T15:04:05Z,
// modified)". info may be nil.
func describeVersion(v string, info *debug.BuildInfo) string {
	details := []string{"unknown"}
	if info != nil {
		details[0] = info.GoVersion
		if v == "" {
			v = info.Main.Version
		}
		vcs := map[string]string{}
		for _, s := range info.Settings {
			vcs[s.Key] = s.Value
		}
		if rev := vcs["vcs.revision"]; rev != "" {
			details = append(details, "commit "+rev[:min(len(rev), 12)])
		}
		if t := vcs["vcs.time"]; t != "" {
			details = append(details, t)
		}
		if vcs["vcs.modified"] == "true" {
			details = append(details, "modified")
		}
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	return fmt.Sprintf("cbctl %s (%s)", v, strings.Join(details, ", "))
}
