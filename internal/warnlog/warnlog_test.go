package warnlog_test

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/tripline/tripline/internal/warnlog"
)

// TestWarnToDefault: WARN and above reach slog.Default() (the one in force
// at each record, attrs and groups kept); INFO does not.
func TestWarnToDefault(t *testing.T) {
	old := slog.Default()
	t.Cleanup(func() { slog.SetDefault(old) })
	l := warnlog.New().With("circuit", "svc").WithGroup("g")

	var buf bytes.Buffer
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Info("quiet")
	l.Warn("heard", "k", 1)
	l.Error("also heard")
	out := buf.String()
	assert.NotContains(t, out, "quiet")
	assert.Contains(t, out, `level=WARN msg=heard circuit=svc g.k=1`)
	assert.Contains(t, out, "also heard")
}
