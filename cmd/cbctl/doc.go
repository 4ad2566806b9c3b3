// Command cbctl shows and steers the tripline circuits that a fleet shares
// through Redis.
//
//	cbctl list [--state open] [-o table|json]
//	cbctl get NAME [-o table|json]
//	cbctl open NAME --reason TEXT [--for 10m] [--actor WHO] [--create]
//	cbctl close NAME --reason TEXT [--for 10m] [--actor WHO] [--create]
//	cbctl reset NAME [--reason TEXT] [--actor WHO] [--create]
//	cbctl watch [NAME...] [-o table|json]
//	cbctl version
//
// open, close and reset go through the store's Apply, the same script the
// library's ForceOpen, ForceClose and Reset use, so every replica obeys at
// its next call. They refuse a circuit the store holds no state for (most
// often a typo) unless --create is given. --actor defaults to the OS user.
//
// # Connection
//
// --redis takes a redis:// or rediss:// URL, with user and password in it if
// needed (redis://user:password@host:6379/0); REDIS_URL is used when --redis
// is not given. --cluster host:port,... connects to Redis Cluster; list then
// covers every master. --prefix (default "tripline") must match the prefix
// the services' stores use. A password never appears in cbctl's output or
// errors: it is replaced by xxxxx.
//
// # Times
//
// Circuit times come from the Redis server's clock, so "probe in" and the
// override's time left are measured against the server's TIME, not the
// machine cbctl runs on. Tables print times in UTC, RFC 3339.
//
// # Names
//
// Tables, watch lines and the open/close/reset line print a name (and an
// override's actor and reason) as it is when every character is printable,
// and quoted with Go escapes ("pay\nments") when it is not, so no name can
// add rows or send control codes to the terminal. JSON output keeps names
// exactly as stored.
//
// # JSON output
//
// list -o json prints an array (empty: []) of circuit objects, sorted by
// name; get -o json prints one circuit object. Every field is always
// present; a time or duration that does not apply is null. Times are RFC 3339
// in UTC.
//
//	name          string  the circuit's name
//	state         string  "closed", "open" or "half-open" (breaker.State.String)
//	generation    number  the circuit's generation; every transition adds one
//	failures      number  consecutive failures, or failures within the window
//	successes     number  successful probes since the circuit went half-open
//	probes        number  probe permits held now
//	last_failure  time    the last failure counted since the circuit was cleared, or null
//	opened_at     time    when the circuit last opened (while open or half-open), or null
//	retry_at      time    while open: when a probe will be allowed, or null
//	retry_in_ms   number  while open: milliseconds until then (0: due now), or null
//	                      (also null while forced open without expiry)
//	override      object  the operator's hold on the circuit, or null:
//	  mode        string  "force-open" or "force-close"
//	  actor       string  who set it
//	  reason      string  why
//	  at          time    when it was set
//	  until       time    when it ends, or null: until reset
//
// watch -o json prints one object per line, per transition:
//
//	time          time    when the store made the transition
//	name          string  the circuit
//	from, to      string  states, spelled as in "state"
//	generation    number  the generation the transition started
//	cause         string  what made it, as the store reports it (for example
//	                      "outcome", "timeout", "reset", "force-open")
//
// # Exit codes
//
// 0: done. 1: the command could not be done (unknown circuit, Redis
// unreachable, ...): one line on stderr. 2: bad usage (unknown command or
// flag, missing argument, bad --for, -o or --state).
//
// # Errors
//
// A failed call to Redis is one line on stderr, exit code 1:
//
//	cbctl: ACTION: TARGET: CAUSE (DETAIL)
//
// ACTION is what was refused ("force-open circuit payments", "list
// circuits", "watch"), TARGET the URL or cluster nodes with the password
// replaced by xxxxx, CAUSE what went wrong in an operator's terms, and
// DETAIL the short words of Redis or the network (a script's decoration
// cut off). The causes:
//
//	NOPERM, a script's refused call  the Redis user "U" may not change (read, watch) circuits;
//	                                 or may not use the keys of prefix "P" / the channel "P:events": is --prefix right?
//	WRONGPASS                        authentication failed for user "U"
//	NOAUTH                           authentication failed: the server requires a password and the URL gives none
//	READONLY                         connected to a read-only replica: point --redis at the master, or use --cluster
//	MASTERDOWN                       connected to a replica that lost its master and serves no data
//	LOADING                          the server is still loading its data set into memory: try again in a moment
//	CLUSTERDOWN, TRYAGAIN            the Redis Cluster is down / is moving this circuit's slot
//	MOVED, ASK                       the server is a Redis Cluster node: connect with --cluster
//	cluster support disabled         the server is not a Redis Cluster: connect with --redis
//	OOM, BUSY, maxclients            out of memory / busy running a script / too many clients
//	connection refused               nothing accepts connections there: is Redis running, is the port right?
//	timeout                          no reply within --timeout D: is the address right, is the server up?
//	EOF, reset; TLS errors           the server closed the connection; certificate not trusted (SSL_CERT_FILE), not a TLS port
//	redisstore.ErrCorrupt            circuit N holds data that tripline did not write; cbctl reset rewrites it
//
// Any other Redis error reads "Redis answered with an error (DETAIL)".
package main
