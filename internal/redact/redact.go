// Package redact hides the passwords of Redis URLs in what cbctl and the
// demo print. It works on text that url.Parse rejects too, since such text
// still ends up in error messages.
package redact

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Mask is what a password is replaced with.
const Mask = "xxxxx"

// URL returns raw with the password part of its userinfo replaced by Mask:
// "redis://u:p@h:1" -> "redis://u:xxxxx@h:1". A lone userinfo
// ("redis://x@h:1") is masked whole: go-redis v9 takes it as the user name,
// but people write passwords there (Redis before ACLs had no user names), so
// it is hidden to be safe.
func URL(raw string) string {
	prefix, userinfo, rest, ok := splitUserinfo(raw)
	if !ok {
		return raw
	}
	user, _, hasPass := strings.Cut(userinfo, ":")
	if !hasPass {
		return prefix + Mask + "@" + rest
	}
	return prefix + user + ":" + Mask + "@" + rest
}

// Secrets returns the password of a URL in every spelling it may be printed
// in: as written, unescaped, escaped again and as %q prints it, longest
// first. A lone userinfo counts as a password (see URL).
func Secrets(raw string) []string {
	_, userinfo, _, ok := splitUserinfo(raw)
	if !ok {
		return nil
	}
	_, pass, hasPass := strings.Cut(userinfo, ":")
	if !hasPass || pass == "" {
		if userinfo == "" {
			return nil
		}
		pass = userinfo
	}
	secrets := []string{pass}
	if un, err := url.PathUnescape(pass); err == nil && un != pass {
		secrets = append(secrets, un)
	}
	if esc := url.QueryEscape(pass); esc != pass {
		secrets = append(secrets, esc)
	}
	if q := strconv.Quote(pass); q[1:len(q)-1] != pass {
		secrets = append(secrets, q[1:len(q)-1])
	}
	SortSecrets(secrets)
	return secrets
}

// SortSecrets orders secrets longest first, so that a secret that contains
// another is replaced whole.
func SortSecrets(secrets []string) {
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
}

// String replaces every non-empty secret in s by Mask. secrets should be
// sorted longest first (as Secrets returns them).
func String(s string, secrets []string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, Mask)
		}
	}
	return s
}

// Userinfo returns the userinfo of raw ("u:p" in "redis://u:p@h:1"): what
// lies between "://" and the last '@'. ok is false when there is none.
func Userinfo(raw string) (userinfo string, ok bool) {
	_, userinfo, _, ok = splitUserinfo(raw)
	return userinfo, ok
}

// splitUserinfo splits "scheme://userinfo@rest" into "scheme://",
// "userinfo" and "rest". ok is false when there is no userinfo. The
// userinfo ends at the last '@': a password may hold '@', '/', '?' or '#'
// unescaped, and a Redis URL has no other place for an '@', so at worst
// this hides too much, never too little.
func splitUserinfo(raw string) (prefix, userinfo, rest string, ok bool) {
	i := strings.Index(raw, "://")
	if i < 0 {
		return "", "", "", false
	}
	prefix, after := raw[:i+3], raw[i+3:]
	at := strings.LastIndex(after, "@")
	if at < 0 {
		return "", "", "", false
	}
	return prefix, after[:at], after[at+1:], true
}
