package breaker

import (
	"context"
	"log/slog"
)

// defaultLogger is the logger of a Breaker whose Config.Logger is nil:
// slog.Default(), Warn and above. A degraded episode or a failing store
// must be heard even when nobody set a logger; transitions are Info and
// stay quiet until one is set.
func defaultLogger() *slog.Logger { return slog.New(warnDefault{}) }

// warnDefault passes records of level Warn and above to the handler of
// slog.Default() at the time of logging, so a slog.SetDefault made after
// New (or in a test) is obeyed. with holds the attrs and groups added by
// WithAttrs and WithGroup, applied to that handler at each call.
type warnDefault struct {
	with func(slog.Handler) slog.Handler
}

func (h warnDefault) handler() slog.Handler {
	d := slog.Default().Handler()
	if h.with != nil {
		d = h.with(d)
	}
	return d
}

// Enabled reports whether l is Warn or above and the default handler takes it.
func (h warnDefault) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.handler().Enabled(ctx, l)
}

// Handle passes r to the default handler.
func (h warnDefault) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return nil
	}
	return h.handler().Handle(ctx, r)
}

// WithAttrs adds attrs to every record, in the default handler of the time.
func (h warnDefault) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.then(func(d slog.Handler) slog.Handler { return d.WithAttrs(attrs) })
}

// WithGroup opens a group, in the default handler of the time.
func (h warnDefault) WithGroup(name string) slog.Handler {
	return h.then(func(d slog.Handler) slog.Handler { return d.WithGroup(name) })
}

func (h warnDefault) then(f func(slog.Handler) slog.Handler) slog.Handler {
	prev := h.with
	if prev == nil {
		return warnDefault{with: f}
	}
	return warnDefault{with: func(d slog.Handler) slog.Handler { return f(prev(d)) }}
}
