package bench

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// gobreakerStore is a gobreaker.SharedDataStore on a plain go-redis client,
// written the way the Redis lock recipe says: Lock is SET key token NX PX,
// retried until it succeeds or lockWait passes; Unlock deletes the key only
// if it still holds this holder's token (one Lua script: GET, compare,
// DEL); GetData is GET, SetData is SET. gobreaker's own v2/redis module
// does the same with redsync.
//
// gobreaker's DistributedCircuitBreaker calls Lock for every Execute and
// sleeps 500ms when Lock returns an error, so Lock waits for the lock
// itself, polling every lockPoll±50%, and returns an error only after
// lockWait. lockPoll is the one that gave gobreaker the most calls per
// second at 8 and 64 goroutines among 0 (spin), 20µs, 100µs, 1ms, 2ms, 5ms,
// 10ms and 25ms (two samples of 0.5s each on this machine): shorter polls
// flood Redis with SET NX while the holder works, longer ones leave the
// lock idle.
type gobreakerStore struct {
	client *redis.Client

	mu     sync.Mutex
	tokens map[string]string // lock key -> token of the current holder
}

const (
	lockTTL  = 5 * time.Second // gobreaker's own mutexTimeout
	lockWait = 5 * time.Second
	lockPoll = 10 * time.Millisecond
)

// unlockScript deletes KEYS[1] if it holds ARGV[1].
var unlockScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)

var errNotHeld = errors.New("gobreakerStore: the lock is not held by this store")

func newGobreakerStore(c *redis.Client) *gobreakerStore {
	return &gobreakerStore{client: c, tokens: map[string]string{}}
}

// Lock implements gobreaker.SharedDataStore.
func (s *gobreakerStore) Lock(name string) error {
	ctx := context.Background()
	b := make([]byte, 16)
	_, _ = crand.Read(b)
	token := hex.EncodeToString(b)
	deadline := time.Now().Add(lockWait)
	for {
		ok, err := s.client.SetNX(ctx, name, token, lockTTL).Result()
		if err != nil {
			return fmt.Errorf("gobreakerStore: lock %s: %w", name, err)
		}
		if ok {
			s.mu.Lock()
			s.tokens[name] = token
			s.mu.Unlock()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gobreakerStore: lock %s: still held after %v", name, lockWait)
		}
		time.Sleep(lockPoll/2 + rand.N(lockPoll))
	}
}

// Unlock implements gobreaker.SharedDataStore.
func (s *gobreakerStore) Unlock(name string) error {
	s.mu.Lock()
	token, ok := s.tokens[name]
	delete(s.tokens, name)
	s.mu.Unlock()
	if !ok {
		return errNotHeld
	}
	n, err := unlockScript.Run(context.Background(), s.client, []string{name}, token).Int()
	if err != nil {
		return fmt.Errorf("gobreakerStore: unlock %s: %w", name, err)
	}
	if n != 1 {
		return fmt.Errorf("gobreakerStore: unlock %s: %w (it expired)", name, errNotHeld)
	}
	return nil
}

// GetData implements gobreaker.SharedDataStore: nil data and no error when
// the key does not exist, which gobreaker reads as "no shared state".
func (s *gobreakerStore) GetData(name string) ([]byte, error) {
	data, err := s.client.Get(context.Background(), name).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gobreakerStore: get %s: %w", name, err)
	}
	return data, nil
}

// SetData implements gobreaker.SharedDataStore.
func (s *gobreakerStore) SetData(name string, data []byte) error {
	if err := s.client.Set(context.Background(), name, data, 0).Err(); err != nil {
		return fmt.Errorf("gobreakerStore: set %s: %w", name, err)
	}
	return nil
}
