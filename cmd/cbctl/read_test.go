package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tripline/tripline/breaker"
	"github.com/tripline/tripline/internal/testutil"
	redisstore "github.com/tripline/tripline/store/redis"
)

// follower is a replica whose Store keeps local views (the default), so
// it subscribes to the prefix's channel at its first call; the call is a
// healthy one, which writes nothing to Redis.
func (f *fleet) follower(t *testing.T, prefix, name string) {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: f.mr.Addr()})
	store := redisstore.New(client, redisstore.WithPrefix(prefix), redisstore.WithCallTimeout(0))
	t.Cleanup(func() { _ = store.Close(); _ = client.Close() })
	b, err := breaker.New(name, breaker.Config{Store: store})
	require.NoError(t, err)
	require.NoError(t, b.Do(t.Context(), ok))
	testutil.WaitFor(t, "the replica to subscribe", func() bool {
		return f.mr.PubSubNumSub(prefix + ":events")[prefix+":events"] > 0
	})
}

// TestGetNothingStored is issue 16's report: with the demo running,
// `cbctl get demo-upstream` said "not found" (exit 1), because a healthy
// circuit writes nothing. get now shows such a circuit as closed with
// nothing stored, with how many subscriptions follow the prefix, and fails
// only when nothing at all is stored under the prefix and nothing follows
// it: a wrong --prefix.
func TestGetNothingStored(t *testing.T) {
	f := newFleet(t)

	// Nothing uses the prefix yet.
	out := f.cbctl(t, "get", "demo-upstream")
	assert.Equal(t, exitFailure, out.code)
	assert.Empty(t, out.stdout)
	assert.Equal(t, `cbctl: circuit demo-upstream: nothing stored under prefix "tripline" and no replica follows it: check --prefix`+"\n", out.stderr)

	f.follower(t, "tripline", "demo-upstream")
	out = f.cbctl(t, "get", "demo-upstream")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Empty(t, out.stderr)
	assert.Equal(t, `name:      demo-upstream
state:     closed
stored:    nothing: a closed circuit writes nothing to Redis until its first failure
followers: 1 subscription to tripline:events follows it (replicas' Stores in use, watchers)
prefix:    "tripline": no circuit is stored
`, out.stdout)

	out = f.cbctl(t, "get", "demo-upstream", "-o", "json")
	require.Equal(t, exitOK, out.code, out.stderr)
	var c circuitJSON
	require.NoError(t, json.Unmarshal([]byte(out.stdout), &c))
	assert.Equal(t, "closed", c.State)
	assert.False(t, c.Stored)
	require.NotNil(t, c.Followers)
	assert.Equal(t, 1, *c.Followers)
	require.NotNil(t, c.Failures)
	assert.Equal(t, 0, *c.Failures)
	assert.Contains(t, out.stdout, `"stored": false`)

	// The same fleet seen through a wrong prefix.
	out = f.cbctl(t, "get", "demo-upstream", "--prefix", "trip1ine")
	assert.Equal(t, exitFailure, out.code)
	assert.Equal(t, `cbctl: circuit demo-upstream: nothing stored under prefix "trip1ine" and no replica follows it: check --prefix`+"\n", out.stderr)

	// A prefix whose circuits are stored, though nothing follows it (a fleet
	// of strict Stores): another circuit is stored, so the name may be
	// right and the circuit healthy.
	out = f.cbctl(t, "open", "other", "--prefix", "strict", "--reason", "r", "--create")
	require.Equal(t, exitOK, out.code, out.stderr)
	out = f.cbctl(t, "get", "healthy", "--prefix", "strict")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Contains(t, out.stdout, "followers: none subscribe to strict:events (a replica whose Store is WithStrict never does)\n")
	assert.Contains(t, out.stdout, "prefix:    \"strict\": other circuits are stored\n")
	out = f.cbctl(t, "get", "healthy", "--prefix", "strict", "-o", "json")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Contains(t, out.stdout, `"followers": 0`)

	// A stored circuit says so in JSON, and has no follower count.
	out = f.cbctl(t, "get", "other", "--prefix", "strict", "-o", "json")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Contains(t, out.stdout, `"stored": true`)
	assert.Contains(t, out.stdout, `"followers": null`)
}

// TestMissingTableUnknowns: an ACL that refuses PUBSUB (tripline's own
// ACL does not grant it) or SCAN leaves a count unknown; get then never
// blames the prefix (prefixUse.unused), and says why the count is missing.
// integration_test.go runs it against a real ACL.
func TestMissingTableUnknowns(t *testing.T) {
	u := prefixUse{followersErr: "redis://h:1: the Redis user \"viewer\" may not read circuits (ACL: NOPERM ...)", complete: true}
	assert.False(t, u.unused())
	var b strings.Builder
	require.NoError(t, writeMissingTable(&b, "ghost", "tripline", "tripline:events", u))
	assert.Equal(t, `name:      ghost
state:     closed
stored:    nothing: a closed circuit writes nothing to Redis until its first failure
followers: unknown: redis://h:1: the Redis user "viewer" may not read circuits (ACL: NOPERM ...)
prefix:    "tripline": no circuit is stored
`, b.String())

	u = prefixUse{storedErr: "redis://h:1: no reply", complete: false}
	assert.False(t, u.unused())
	b.Reset()
	require.NoError(t, writeMissingTable(&b, "ghost", "tripline", "tripline:events", u))
	assert.Contains(t, b.String(), "prefix:    \"tripline\": unknown whether other circuits are stored: redis://h:1: no reply\n")

	u = prefixUse{} // nothing found in the part of a large keyspace scanned
	assert.False(t, u.unused(), "an incomplete scan proves nothing")
	b.Reset()
	require.NoError(t, writeMissingTable(&b, "ghost", "tripline", "tripline:events", u))
	assert.Contains(t, b.String(), "prefix:    \"tripline\": no circuit among the keys scanned\n")

	assert.True(t, prefixUse{complete: true}.unused())
}

// TestListEmptyExplains: an empty list says why on stderr, while stdout
// keeps the header (table) or [] (JSON).
func TestListEmptyExplains(t *testing.T) {
	f := newFleet(t)
	out := f.cbctl(t, "list")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Equal(t, "NAME  STATE  FAILURES  GENERATION  PROBE IN  OVERRIDE\n", out.stdout)
	assert.Equal(t, `note: nothing stored under prefix "tripline" and no replica follows it: check --prefix`+"\n", out.stderr)

	f.follower(t, "tripline", "demo-upstream")
	for _, format := range []string{"table", "json"} {
		out = f.cbctl(t, "list", "-o", format)
		require.Equal(t, exitOK, out.code, out.stderr)
		assert.Equal(t, `note: no circuit stored under prefix "tripline": 1 subscription to tripline:events follows it (replicas' Stores in use, watchers); a closed circuit writes nothing to Redis until its first failure`+"\n", out.stderr)
	}
	assert.Equal(t, "[]\n", out.stdout)

	out = f.cbctl(t, "open", "search", "--reason", "r", "--create")
	require.Equal(t, exitOK, out.code, out.stderr)
	out = f.cbctl(t, "list", "--state", "half-open")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Equal(t, `note: none of the 1 circuits under prefix "tripline" is half-open`+"\n", out.stderr)
	out = f.cbctl(t, "list")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Empty(t, out.stderr, "no note when something is listed")
}

// TestOpenCircuitColumns is issue 16's report on list: an open circuit
// showed FAILURES 0, though it tripped on failures, and one past its retry
// time showed "open ... PROBE IN now", which --state open seemed to
// confirm. The scripts clear the count at a trip, so FAILURES is "-" (JSON
// null) while open or half-open; past its retry time a circuit is "open,
// probe due" (JSON probe_due), and --state open still lists it: Redis holds
// it open until the next call.
func TestOpenCircuitColumns(t *testing.T) {
	f := newFleet(t)
	r := f.replica(t, "payments", breaker.Config{FailureThreshold: 2, Timeout: 30 * time.Second})
	for range 2 {
		require.ErrorIs(t, r.Do(t.Context(), fail), errUpstream)
	}
	inventory := f.replica(t, "inventory", breaker.Config{FailureThreshold: 5})
	require.ErrorIs(t, inventory.Do(t.Context(), fail), errUpstream)

	f.mr.SetTime(t0.Add(10 * time.Second))
	out := f.cbctl(t, "list")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Equal(t, `NAME       STATE   FAILURES  GENERATION  PROBE IN  OVERRIDE
inventory  closed  1         0           -         -
payments   open    -         1           20s       -
`, out.stdout)

	f.mr.SetTime(t0.Add(31 * time.Second))
	out = f.cbctl(t, "list", "--state", "open")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Equal(t, `NAME      STATE            FAILURES  GENERATION  PROBE IN  OVERRIDE
payments  open, probe due  -         1           now       -
`, out.stdout)

	out = f.cbctl(t, "get", "payments")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Contains(t, out.stdout, "state:        open, probe due\n")
	assert.Contains(t, out.stdout, "failures:     - (Redis clears the count when the circuit trips)\n")

	out = f.cbctl(t, "list", "-o", "json")
	require.Equal(t, exitOK, out.code, out.stderr)
	var list []circuitJSON
	require.NoError(t, json.Unmarshal([]byte(out.stdout), &list))
	require.Len(t, list, 2)
	assert.Equal(t, "open", list[1].State, "JSON keeps the state Redis holds")
	assert.True(t, list[1].ProbeDue)
	assert.Nil(t, list[1].Failures)
	assert.Contains(t, out.stdout, `"failures": null`)
	assert.False(t, list[0].ProbeDue)
	require.NotNil(t, list[0].Failures)
	assert.Equal(t, 1, *list[0].Failures)

	// The next call moves it to half-open: no count there either.
	require.ErrorIs(t, r.Do(t.Context(), func(ctx context.Context) error {
		out := f.cbctl(t, "list", "--state", "half-open")
		assert.Equal(t, exitOK, out.code, out.stderr)
		assert.Regexp(t, `(?m)^payments +half-open +- +2 +probing +-$`, out.stdout)
		return errUpstream
	}), errUpstream)
}

// TestListShowsCorruptCircuit is issue 17's report: one circuit holding
// data tripline did not write made `cbctl list` fail entirely. Now the
// others are listed, the damaged one as "corrupt" (JSON: its error), with a
// note on stderr that says how to repair it; --state corrupt lists only
// such circuits.
func TestListShowsCorruptCircuit(t *testing.T) {
	f := newFleet(t)
	for _, name := range []string{"a", "b", "c"} {
		out := f.cbctl(t, "open", name, "--reason", "r", "--create", "--actor", "ops")
		require.Equal(t, exitOK, out.code, out.stderr)
	}
	f.mr.HSet("tripline:{Yg}", "g", "-1") // circuit "b"

	const note = `note: circuit b holds data that tripline did not write; cbctl reset rewrites it (malformed circuit data: field g of "tripline:{Yg}" is "-1")` + "\n"
	out := f.cbctl(t, "list")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Equal(t, `NAME  STATE    FAILURES  GENERATION  PROBE IN  OVERRIDE
a     open     -         1           held      force-open until reset by ops: r
b     corrupt  -         -           -         -
c     open     -         1           held      force-open until reset by ops: r
`, out.stdout)
	assert.Equal(t, note, out.stderr)

	out = f.cbctl(t, "list", "-o", "json")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Equal(t, note, out.stderr)
	var list []circuitJSON
	require.NoError(t, json.Unmarshal([]byte(out.stdout), &list))
	require.Len(t, list, 3)
	assert.Equal(t, "corrupt", list[1].State)
	require.NotNil(t, list[1].Error)
	assert.Contains(t, *list[1].Error, `malformed circuit data: field g of "tripline:{Yg}" is "-1"`)
	assert.Nil(t, list[0].Error)

	out = f.cbctl(t, "list", "--state", "corrupt")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Equal(t, "NAME  STATE    FAILURES  GENERATION  PROBE IN  OVERRIDE\nb     corrupt  -         -           -         -\n", out.stdout)
	out = f.cbctl(t, "list", "--state", "open")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Len(t, lines(out.stdout), 3, "a header and the two open circuits")
	assert.Equal(t, note, out.stderr, "the damaged circuit is still reported")

	out = f.cbctl(t, "reset", "b", "--reason", "repair")
	require.Equal(t, exitOK, out.code, out.stderr)
	out = f.cbctl(t, "list", "--state", "corrupt")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Equal(t, `note: none of the 3 circuits under prefix "tripline" is corrupt`+"\n", out.stderr)
}

// TestUnreadableNamesQuoted is issue 17's report: a circuit named " "
// showed as a blank in `cbctl list`. A name with spaces at an end, two in
// a row, or a leading '"' is quoted, as one with control characters was.
func TestUnreadableNamesQuoted(t *testing.T) {
	f := newFleet(t)
	for _, name := range []string{" ", "a  b", " lead", "trail ", `"q"`} {
		out := f.cbctl(t, "open", name, "--reason", "r", "--create", "--actor", "ops")
		require.Equal(t, exitOK, out.code, out.stderr)
		assert.True(t, strings.HasPrefix(out.stdout, strconv.Quote(name)+": forced open"), out.stdout)
	}
	out := f.cbctl(t, "list")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Equal(t, `NAME      STATE  FAILURES  GENERATION  PROBE IN  OVERRIDE
" "       open   -         1           held      force-open until reset by ops: r
" lead"   open   -         1           held      force-open until reset by ops: r
"\"q\""   open   -         1           held      force-open until reset by ops: r
"a  b"    open   -         1           held      force-open until reset by ops: r
"trail "  open   -         1           held      force-open until reset by ops: r
`, out.stdout)
	out = f.cbctl(t, "get", " ")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Contains(t, out.stdout, `name:         " "`+"\n")
}
