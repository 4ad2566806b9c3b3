// Package lua holds tripline's Redis Lua scripts. They live as .lua files in
// this folder (go:embed cannot reach a parent folder, so this package embeds
// them and store/redis wraps each in redis.NewScript).
//
// Each exported script is lib.lua (the shared reader, writer and argument
// checks) followed by the script's own file. The scripts follow
// breaker/memstore.go step for step, read time from Redis TIME, touch only
// the keys passed in KEYS (all in one hash slot), and check every argument
// and every field they read before their first write.
package lua

import _ "embed"

var (
	//go:embed lib.lua
	lib string
	//go:embed admit.lua
	admit string
	//go:embed record.lua
	record string
	//go:embed apply.lua
	apply string
	//go:embed load.lua
	load string
	//go:embed settle.lua
	settle string
)

// The scripts, ready for redis.NewScript. Treat them as constants.
var (
	// Admit decides whether one call may run: it reads the circuit, moves
	// it from open to half-open once RetryAt has passed, and leases a probe
	// permit while half-open.
	Admit = lib + admit
	// Record counts one outcome: it ignores stale generations and unheld
	// probes, counts failures (consecutive or in a sliding window), trips,
	// counts probe successes, closes, and releases the probe's lease.
	Record = lib + record
	// Apply carries out reset, force-open and force-close, keeping who, why
	// and when with an override.
	Apply = lib + apply
	// Load reads a circuit without changing it.
	Load = lib + load
	// Settle settles a write call whose reply was not read: it releases
	// the probe lease the call took or held, and makes sure the call, if
	// it has not run yet, changes nothing when it does. It stands alone.
	Settle = settle
)
