package redisstore

import "time"

// monoStart anchors the local clock. Only its monotonic reading is used:
// monoNow measures how much time has passed on this machine, which is all
// a local view needs (how old it is, how long until a RetryAfter that Redis
// gave runs out). No wall-clock time is ever read, sent to Redis or
// compared with a Redis time.
var monoStart = time.Now()

// monoNow is the local monotonic clock: time since monoStart.
func monoNow() time.Duration { return time.Since(monoStart) }
