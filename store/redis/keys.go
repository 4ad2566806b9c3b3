package redisstore

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// The key layout is described in the package documentation; keysFor is the
// one place keys are built.

// nameEncoding is unpadded base64url; decoding is strict, so each name has
// exactly one encoding.
var nameEncoding = base64.RawURLEncoding.Strict()

// circuitKeys are the Redis keys of one circuit.
type circuitKeys struct {
	enc    string // the encoded name
	hash   string // state hash
	window string // failure window
	leases string // probe leases
}

// keysFor builds every key of a circuit; it is the only place keys are made.
func keysFor(prefix, name string) circuitKeys {
	enc := nameEncoding.EncodeToString([]byte(name))
	h := prefix + ":{" + enc + "}"
	return circuitKeys{enc: enc, hash: h, window: h + ":w", leases: h + ":p"}
}

// memo is the key that remembers the reply of the call with this id.
func (k circuitKeys) memo(callID string) string { return k.hash + ":r:" + callID }

// state is the KEYS of the load script: the keys that hold the circuit.
func (k circuitKeys) state() []string { return []string{k.hash, k.window, k.leases} }

// list is the KEYS of a write script: state, window, leases, and the memo
// of the call with this id.
func (k circuitKeys) list(callID string) []string {
	return []string{k.hash, k.window, k.leases, k.memo(callID)}
}

// nameFromKey recovers the circuit name from the key of a state hash under
// prefix. It reports false for any other key.
func nameFromKey(prefix, key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, prefix+":{")
	if !ok {
		return "", false
	}
	enc, ok := strings.CutSuffix(rest, "}")
	if !ok || enc == "" {
		return "", false
	}
	name, err := decodeName(enc)
	if err != nil {
		return "", false
	}
	return name, true
}

// decodeName is the inverse of the name encoding in keysFor.
func decodeName(enc string) (string, error) {
	if len(enc) > nameEncoding.EncodedLen(maxNameLen) {
		return "", errors.New("encoded name too long")
	}
	b, err := nameEncoding.DecodeString(enc)
	if err != nil {
		return "", err
	}
	if len(b) == 0 {
		return "", errors.New("empty name")
	}
	return string(b), nil
}

// checkPrefix reports why prefix cannot be a key prefix, or nil.
func checkPrefix(prefix string) error {
	switch {
	case prefix == "":
		return errors.New("prefix is empty")
	case len(prefix) > maxPrefixLen:
		return fmt.Errorf("prefix is %d bytes, longer than %d", len(prefix), maxPrefixLen)
	case strings.ContainsAny(prefix, "{}"):
		return fmt.Errorf("prefix %q holds '{' or '}', which would change the hash slot of its keys", prefix)
	}
	return nil
}

// scanPattern matches the state hash of every circuit under prefix, and no
// other key tripline writes.
func scanPattern(prefix string) string {
	var b strings.Builder
	for i := 0; i < len(prefix); i++ {
		switch prefix[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(prefix[i])
	}
	b.WriteString(":{*}")
	return b.String()
}
