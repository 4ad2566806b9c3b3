// Package warnlog is the logger tripline uses when the user set none: the
// records of level WARN and above go to slog.Default(), looked up at each
// record, so a later slog.SetDefault is followed. A degraded breaker or a
// store in trouble is heard without any setup; routine INFO lines
// (transitions) stay quiet until a logger is set.
package warnlog

import (
	"context"
	"log/slog"
)

// New returns a logger that sends WARN and above to slog.Default().
func New() *slog.Logger { return slog.New(handler{}) }

// handler forwards to slog.Default()'s handler, with attrs and groups
// kept as operations to replay on it.
type handler struct {
	ops []func(slog.Handler) slog.Handler
}

func (h handler) target() slog.Handler {
	t := slog.Default().Handler()
	for _, op := range h.ops {
		t = op(t)
	}
	return t
}

func (h handler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && slog.Default().Handler().Enabled(ctx, l)
}

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return nil // a caller that skipped Enabled
	}
	return h.target().Handle(ctx, r)
}

func (h handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.with(func(t slog.Handler) slog.Handler { return t.WithAttrs(attrs) })
}

func (h handler) WithGroup(name string) slog.Handler {
	return h.with(func(t slog.Handler) slog.Handler { return t.WithGroup(name) })
}

func (h handler) with(op func(slog.Handler) slog.Handler) handler {
	return handler{ops: append(h.ops[:len(h.ops):len(h.ops)], op)}
}
