package redact

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"redis://localhost:6379", "redis://localhost:6379"},
		{"redis://user:pw@localhost:6379/0", "redis://user:xxxxx@localhost:6379/0"},
		{"rediss://:pw@h:1", "rediss://:xxxxx@h:1"},
		{"redis://pw@h:1", "redis://xxxxx@h:1"},
		{"redis://u:p@ss:w@rd@h:1/2?dial_timeout=1", "redis://u:xxxxx@h:1/2?dial_timeout=1"},
		{"redis://u:pw@h:bad", "redis://u:xxxxx@h:bad"}, // url.Parse rejects it
		{"redis://alice:s3/cret@h:1/x", "redis://alice:xxxxx@h:1/x"},
		{"h:1", "h:1"},
		{"", ""},
		{"redis://u:pa/ss@h:1", "redis://u:xxxxx@h:1"},
		{"redis://h:1/x@y", "redis://h:xxxxx@y"}, // an '@' ends the userinfo: too much hidden, never too little
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, URL(tt.in), tt.in)
	}
}

func TestSecrets(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"redis://h:1", nil},
		{"redis://@h:1", nil},
		{"redis://u:@h:1", []string{"u%3A", "u:"}}, // empty password: the userinfo is hidden to be safe
		{"redis://u:pw@h:1", []string{"pw"}},
		{"redis://pw@h:1", []string{"pw"}},
		{"redis://u:a%2Fb@h:1", []string{"a%252Fb", "a%2Fb", "a/b"}},
		{"redis://u:a\"b@h:port", []string{"a%22b", "a\\\"b", "a\"b"}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Secrets(tt.in), tt.in)
	}
}

func TestString(t *testing.T) {
	raw := "redis://alice:s3/cret@h:port" // url.Parse rejects it
	msg := "dial " + raw + ": refused; password s3/cret"
	assert.Equal(t, "dial redis://alice:xxxxx@h:port: refused; password xxxxx", String(msg, Secrets(raw)))
	assert.Equal(t, "no secrets", String("no secrets", nil))
	assert.Equal(t, "a b", String("a b", []string{""}))
}
