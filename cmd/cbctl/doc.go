// Command cbctl shows and steers the tripline circuits that a fleet shares
// through Redis.
//
//	cbctl list [--state closed|open|half-open|corrupt] [-o table|json]
//	cbctl get NAME [-o table|json]
//	cbctl open NAME --reason TEXT [--for 10m] [--actor WHO] [--create]
//	cbctl close NAME --reason TEXT [--for 10m] [--actor WHO] [--create]
//	cbctl reset NAME [--reason TEXT] [--actor WHO] [--create]
//	cbctl watch [NAME...] [-o table|json]
//	cbctl version
//
// It connects with --redis URL (or REDIS_URL) or --cluster host:port,...,
// under --prefix (default "tripline"). open, close and reset go through the
// store's Apply, the script the library's ForceOpen, ForceClose and Reset
// use. Exit codes: 0 done, 1 failure (one line on stderr), 2 bad usage.
//
// docs/cbctl.md is the reference: what each command shows and does, circuits
// with nothing stored, the JSON fields, the error causes and the exit codes.
// The code is laid out as the reference is: main.go (run, exit codes),
// commands.go (flags, connection, open/close/reset), read.go (list, get),
// watch.go, render.go (tables, JSON, names), errors.go (the causes), conn.go
// (URLs and passwords), version.go.
package main
