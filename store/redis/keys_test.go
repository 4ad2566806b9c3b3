package redisstore

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// keySlot is Redis Cluster's HASH_SLOT: CRC16 (XMODEM) of the key's hash
// tag (the text between the first '{' and the next '}', if not empty) or of
// the whole key, modulo 16384.
func keySlot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}

func TestKeySlotKnownValues(t *testing.T) {
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	assert.Equal(t, uint16(0x31C3), keySlot("123456789")) // CRC16/XMODEM check value
	assert.Equal(t, uint16(12182), keySlot("foo"))
	assert.Equal(t, keySlot("user1000"), keySlot("{user1000}.following"))
	assert.Equal(t, keySlot("{}x"), keySlot("{}x")) // an empty tag: the whole key
}

var nameCases = []string{
	"a",
	"payments",
	"{",
	"}",
	"{}",
	"{a}",
	"a}{b",
	":",
	"a:b",
	"prefix:{x}:w",
	" ",
	"with space",
	"ü 日本 🙂",
	"\x00",
	"\xff\xfe", // not UTF-8: the store does not care
	"*?[]\\",
	strings.Repeat("x", maxNameLen),
	strings.Repeat("é", maxNameLen/2),
}

// checkKeys checks everything the key layout promises for one name.
func checkKeys(t *testing.T, prefix, name string) circuitKeys {
	t.Helper()
	k := keysFor(prefix, name)
	got, ok := nameFromKey(prefix, k.hash)
	require.True(t, ok, "the hash key %q does not decode", k.hash)
	assert.Equal(t, name, got, "round trip of %q", name)

	memo := k.memo("0123456789abcdef-1")
	slot := keySlot(k.hash)
	for _, key := range []string{k.hash, k.window, k.leases, memo} {
		assert.True(t, strings.HasPrefix(key, prefix+":{"), "%q is not under prefix %q", key, prefix)
		assert.Equal(t, 1, strings.Count(key, "{"), "%q: one '{'", key)
		assert.Equal(t, 1, strings.Count(key, "}"), "%q: one '}'", key)
		assert.Equal(t, slot, keySlot(key), "%q is not in the slot of %q", key, k.hash)
	}
	// The slot is the encoded name's: nothing in the name can choose it.
	assert.Equal(t, keySlot(k.enc), slot)
	assert.NotContains(t, k.enc, ":")
	for _, key := range []string{k.window, k.leases, memo} {
		_, ok := nameFromKey(prefix, key)
		assert.False(t, ok, "%q is not a state hash but decodes", key)
	}
	return k
}

func TestKeysRoundTripAndNoCollisions(t *testing.T) {
	seen := map[string]string{}
	for _, name := range nameCases {
		k := checkKeys(t, "tripline", name)
		for _, key := range []string{k.hash, k.window, k.leases} {
			other, dup := seen[key]
			assert.False(t, dup, "names %q and %q share the key %q", name, other, key)
			seen[key] = name
		}
	}
}

func TestKeysLong(t *testing.T) {
	k := keysFor("tripline", strings.Repeat("x", maxNameLen))
	assert.Equal(t, len("tripline:{}")+nameEncoding.EncodedLen(maxNameLen), len(k.hash))
}

func TestNameFromKeyRejectsForeignKeys(t *testing.T) {
	for _, key := range []string{
		"tripline",
		"tripline:{}",
		"tripline:{YQ}:w",
		"tripline:{YQ==}", // padded: not our encoding
		"tripline:{YR}",   // non-canonical trailing bits
		"tripline:{Y!}",   // not base64url
		"tripline:{YQ}}",  // extra brace
		"other:{YQ}",      // another prefix
		"tripline:x:{YQ}", // a longer prefix
		"tripline:{" + strings.Repeat("eH", 200) + "}", // longer than any name
	} {
		_, ok := nameFromKey("tripline", key)
		assert.False(t, ok, "%q", key)
	}
	name, ok := nameFromKey("tripline", "tripline:{YQ}")
	require.True(t, ok)
	assert.Equal(t, "a", name)
}

// TestPrefixIsolation: no key of a circuit under one prefix is a key of any
// circuit under another prefix, even when one prefix extends the other.
func TestPrefixIsolation(t *testing.T) {
	prefixes := []string{"a", "a:", "a:b", "ab", "a*", "a?", "a[b]", "a\\", "tripline"}
	owner := map[string]string{}
	for _, p := range prefixes {
		require.NoError(t, checkPrefix(p))
		for _, name := range nameCases {
			k := keysFor(p, name)
			for _, key := range []string{k.hash, k.window, k.leases} {
				prev, dup := owner[key]
				require.False(t, dup, "key %q of (%q, %q) also belongs to %s", key, p, name, prev)
				owner[key] = p + " " + name
			}
			for _, q := range prefixes {
				if q == p {
					continue
				}
				_, ok := nameFromKey(q, k.hash)
				assert.False(t, ok, "the key %q of prefix %q decodes under prefix %q", k.hash, p, q)
			}
		}
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, p := range []string{"", "{", "}", "a{b", "a}b", "{a}", strings.Repeat("p", maxPrefixLen+1)} {
		assert.Error(t, checkPrefix(p), "%q", p)
	}
	for _, p := range []string{"a", "app:v2", "*", strings.Repeat("p", maxPrefixLen)} {
		assert.NoError(t, checkPrefix(p), "%q", p)
	}
}

func TestScanPattern(t *testing.T) {
	assert.Equal(t, "tripline:{*}", scanPattern("tripline"))
	assert.Equal(t, `a\*\?\[b\]\\:{*}`, scanPattern(`a*?[b]\`))
}

// FuzzNameKey checks, for any name and prefix: the name round-trips through
// its key, all its keys share one slot chosen by the encoded name alone,
// and no other name or prefix decodes from its key.
func FuzzNameKey(f *testing.F) {
	for _, name := range nameCases {
		f.Add(name, "tripline", "other")
	}
	f.Add("a", "a", "a:")
	f.Add("{x}", "p:{", "p")
	f.Add("", "tripline", "tripline:")
	f.Fuzz(func(t *testing.T, name, prefix, other string) {
		if name == "" || len(name) > maxNameLen || checkPrefix(prefix) != nil {
			return
		}
		k := checkKeys(t, prefix, name)
		if other != prefix && checkPrefix(other) == nil {
			if got, ok := nameFromKey(other, k.hash); ok {
				t.Fatalf("key %q of (%q, %q) decodes under prefix %q as %q", k.hash, prefix, name, other, got)
			}
		}
		// A different name never gets the same hash key.
		if alt := name + "\x00"; len(alt) <= maxNameLen {
			assert.NotEqual(t, k.hash, keysFor(prefix, alt).hash)
		}
	})
}
