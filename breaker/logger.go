package breaker

import (
	"log/slog"

	"github.com/tripline/tripline/internal/warnlog"
)

// defaultLogger is the logger of a Breaker whose Config.Logger is nil:
// slog.Default(), Warn and above. A degraded episode or a failing store
// must be heard even when nobody set a logger; transitions are Info and
// stay quiet until one is set.
func defaultLogger() *slog.Logger { return warnlog.New() }
