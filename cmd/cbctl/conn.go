package main

import (
	"errors"
	"net"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/tripline/tripline/internal/redact"
)

// connSpec is where cbctl connects, as given by --redis, --cluster or
// REDIS_URL, with every secret it carries kept for redaction.
type connSpec struct {
	single  *redis.Options        // --redis or REDIS_URL
	cluster *redis.ClusterOptions // --cluster
	shown   string                // the target with passwords redacted, for messages
	secrets []string              // strings that must never be printed
}

// parseConn builds the connection from the flags and the environment. Its
// errors never contain a password.
func parseConn(redisURL, cluster, envURL string) (*connSpec, error) {
	switch {
	case redisURL != "" && cluster != "":
		return nil, usageErrorf("--redis and --cluster cannot be used together")
	case cluster != "":
		return parseCluster(cluster)
	case redisURL != "":
		return parseSingle("--redis", redisURL)
	case envURL != "":
		return parseSingle("REDIS_URL", envURL)
	}
	return nil, usageErrorf("no Redis to connect to: give --redis URL, --cluster host:port,... or set REDIS_URL")
}

func parseSingle(source, raw string) (*connSpec, error) {
	spec := &connSpec{shown: redact.URL(raw), secrets: redact.Secrets(raw)}
	if !strings.HasPrefix(raw, "redis://") && !strings.HasPrefix(raw, "rediss://") {
		return nil, usageErrorf("%s %q: want a redis:// or rediss:// URL", source, spec.shown)
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		return nil, usageErrorf("%s %q: %s", source, spec.shown, parseDetail(raw, err))
	}
	spec.single = opts
	return spec, nil
}

// parseCluster reads "host:port,host:port,...". An entry may also be a
// redis:// or rediss:// URL; the first URL's user, password and TLS apply to
// every node.
func parseCluster(list string) (*connSpec, error) {
	spec := &connSpec{}
	opts := &redis.ClusterOptions{}
	var shown []string
	credsSet := false
	for entry := range strings.SplitSeq(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		shownEntry := redact.URL(entry)
		shown = append(shown, shownEntry)
		spec.secrets = append(spec.secrets, redact.Secrets(entry)...)
		if !strings.Contains(entry, "://") {
			if _, _, err := net.SplitHostPort(entry); err != nil {
				return nil, usageErrorf("--cluster entry %q: want host:port", shownEntry)
			}
			opts.Addrs = append(opts.Addrs, entry)
			continue
		}
		if !strings.HasPrefix(entry, "redis://") && !strings.HasPrefix(entry, "rediss://") {
			return nil, usageErrorf("--cluster entry %q: want host:port or a redis:// URL", shownEntry)
		}
		one, err := redis.ParseURL(entry)
		if err != nil {
			return nil, usageErrorf("--cluster entry %q: %s", shownEntry, parseDetail(entry, err))
		}
		opts.Addrs = append(opts.Addrs, one.Addr)
		if !credsSet {
			opts.Username, opts.Password, opts.TLSConfig = one.Username, one.Password, one.TLSConfig
			credsSet = true
		}
	}
	if len(opts.Addrs) == 0 {
		return nil, usageErrorf("--cluster: no host:port given")
	}
	spec.cluster = opts
	spec.shown = strings.Join(shown, ",")
	return spec, nil
}

// parseDetail is what to say about a URL go-redis could not parse. Its
// error quotes pieces of the URL, and a password with an unescaped '/', '?',
// '#' or ':' is cut into pieces that no redaction of the whole password
// finds. So a URL that url.Parse refuses is parsed again with its password
// masked: if that fails too, the fault is elsewhere (a port that is not a
// number, a bad host) and url.Parse's words, about the masked URL, are
// given; if not, the password is at fault and only a hint is given.
func parseDetail(raw string, err error) string {
	const hint = "not a valid Redis URL (write special characters of the password as %XX)"
	var ue *url.Error
	if errors.As(err, &ue) {
		_, merr := url.Parse(redact.URL(raw))
		if errors.As(merr, &ue) {
			return "not a valid URL: " + ue.Err.Error()
		}
		return hint
	}
	msg := err.Error()
	userinfo, ok := redact.Userinfo(raw)
	if !ok {
		return msg
	}
	for piece := range strings.FieldsFuncSeq(userinfo, func(r rune) bool { return strings.ContainsRune(":/?#@", r) }) {
		if strings.Contains(msg, piece) {
			return hint
		}
	}
	return msg
}

// client opens the connection (lazily: nothing is dialled yet).
func (c *connSpec) client() redis.UniversalClient {
	if c.cluster != nil {
		return redis.NewClusterClient(c.cluster)
	}
	return redis.NewClient(c.single)
}

// redact removes every secret of the connection from s.
func (c *connSpec) redact(s string) string {
	if c == nil {
		return s
	}
	return redact.String(s, c.secrets)
}

// describe names the target in messages: "redis://h:1" or "cluster h:1,h:2",
// passwords redacted.
func (c *connSpec) describe() string {
	if c.cluster != nil {
		return "cluster " + c.shown
	}
	return c.shown
}

// user is the Redis user the connection authenticates as: "" for the
// default user.
func (c *connSpec) user() string {
	if c.cluster != nil {
		return c.cluster.Username
	}
	return c.single.Username
}

// usesTLS reports whether the connection uses TLS (rediss://).
func (c *connSpec) usesTLS() bool {
	if c.cluster != nil {
		return c.cluster.TLSConfig != nil
	}
	return c.single.TLSConfig != nil
}
