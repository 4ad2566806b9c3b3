package main

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestDescribeVersion is issue 16's report: `cbctl version` showed no
// commit when built with `go build`. The vcs settings that go build stamps
// are shown: the commit (12 hex digits), its time, and "modified" for a
// tree with changes.
func TestDescribeVersion(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	info := func(mainVersion string, settings []debug.BuildSetting) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: mainVersion}, Settings: settings}
	}
	const rev = "46fac5f1d2e3a4b5c6d7e8f90123456789abcdef"
	tests := []struct {
		name, ldflags string
		info          *debug.BuildInfo
		want          string
	}{
		{"no build info", "", nil, "cbctl devel (unknown)"},
		{"go run", "", info("(devel)", nil), "cbctl devel (go1.26.0)"},
		{"go install @v", "", info("v1.2.3", nil), "cbctl v1.2.3 (go1.26.0)"},
		{"ldflags", "v9.9.9", info("(devel)", vcs("vcs.revision", rev)), "cbctl v9.9.9 (go1.26.0, commit 46fac5f1d2e3)"},
		{"go build, clean", "", info("(devel)", vcs("vcs", "git", "vcs.revision", rev, "vcs.time", "2026-12-01T10:00:00Z", "vcs.modified", "false")),
			"cbctl devel (go1.26.0, commit 46fac5f1d2e3, 2026-12-01T10:00:00Z)"},
		{"go build, modified", "", info("(devel)", vcs("vcs.revision", rev, "vcs.time", "2026-12-01T10:00:00Z", "vcs.modified", "true")),
			"cbctl devel (go1.26.0, commit 46fac5f1d2e3, 2026-12-01T10:00:00Z, modified)"},
		{"short revision", "", info("", vcs("vcs.revision", "abc")), "cbctl devel (go1.26.0, commit abc)"},
		{"go build with a module version", "", info("v1.3.0-0.20261201100000-46fac5f1d2e3", vcs("vcs.revision", rev, "vcs.modified", "true")),
			"cbctl v1.3.0-0.20261201100000-46fac5f1d2e3 (go1.26.0, commit 46fac5f1d2e3, modified)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, describeVersion(tt.ldflags, tt.info))
		})
	}
}
