package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	redisstore "github.com/tripline/tripline/store/redis"
)

// This file is the one place where cbctl turns what Redis, the network and
// the store return into the words it prints. Every command reports a failed
// call through session.fail, which prints
//
//	<action>: <target>: <cause> (<detail>)
//
// on one line: the action refused ("force-open circuit payments", "list
// circuits"), the target with its password redacted, a cause the operator
// can act on, and the short words of Redis or the network after it.

// access is what a command asks of Redis; it picks the words for an ACL
// refusal.
type access int

const (
	accessRead   access = iota // list, get: scripts that read, SCAN, TIME
	accessChange               // open, close, reset: the apply script
	accessWatch                // watch: SUBSCRIBE
)

// verb is what a user refused this access "may not" do.
func (a access) verb() string {
	switch a {
	case accessChange:
		return "change circuits"
	case accessWatch:
		return "watch circuits"
	default:
		return "read circuits"
	}
}

// failContext is what explain knows about the call that failed.
type failContext struct {
	access  access
	user    string        // the Redis user name; "" is the default user
	prefix  string        // --prefix
	channel string        // the prefix's events channel
	timeout time.Duration // --timeout; 0 when none bounds the call (watch)
	tls     bool          // the connection uses TLS (rediss://)
	live    bool          // the connection had worked: no hints about address, port or TLS
}

// maxDetail bounds the Redis or network words kept after the cause, in
// bytes.
const maxDetail = 160

// explain says in one line why a call failed: the cause, then the short
// detail in parentheses. An error it knows nothing about is given as it
// is, on one line. It never prints more of the connection than fc holds,
// so it adds no password; the caller redacts the line anyway.
func explain(err error, fc failContext) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, redisstore.ErrCorrupt) {
		return explainCorrupt(err)
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return explainReply(rerr.Error(), fc)
	}
	if s, ok := explainNet(err, fc); ok {
		return s
	}
	return oneLine(err.Error())
}

// corruptName finds the circuit the store names in an ErrCorrupt error:
// `... circuit "NAME": malformed circuit data: ...`.
var corruptName = regexp.MustCompile(`circuit ("(?:[^"\\]|\\.)*"): malformed circuit data`)

// explainCorrupt names the circuit whose data tripline cannot read, and the
// repair: reset writes it again from scratch.
func explainCorrupt(err error) string {
	msg := err.Error()
	what := "a circuit"
	if m := corruptName.FindAllStringSubmatch(msg, -1); m != nil {
		if name, uerr := strconv.Unquote(m[len(m)-1][1]); uerr == nil {
			what = "circuit " + shown(name)
		}
	}
	detail := "malformed circuit data"
	if i := strings.LastIndex(msg, "malformed circuit data"); i >= 0 {
		detail = msg[i:]
	}
	return what + " holds data that tripline did not write; cbctl reset rewrites it" + paren(detail)
}

// redisReply is an error reply of Redis, taken apart.
type redisReply struct {
	code string // the first word: NOPERM, READONLY, ...; ERR when none
	text string // the reply without the code, its script decoration cut off
}

// scriptSuffix is what Redis 7 appends to the error of a script's call:
// " script: <sha>, on @user_script:<line>.".
var scriptSuffix = regexp.MustCompile(` script: [0-9a-f]+, on @user_script`)

// parseReply takes a Redis error reply apart. A script's error comes
// decorated ("ERR Error running script (call to f_<sha>): @user_script:3:
// -READONLY ..." before Redis 7, "READONLY ... script: <sha>, on
// @user_script:3." since): the code and text are those of the command the
// script ran.
func parseReply(msg string) redisReply {
	msg = strings.TrimSpace(msg)
	if rest, ok := strings.CutPrefix(msg, "ERR Error running script"); ok {
		if i := strings.LastIndex(rest, ": -"); i >= 0 {
			msg = rest[i+3:]
		}
	}
	if loc := scriptSuffix.FindStringIndex(msg); loc != nil {
		msg = msg[:loc[0]]
	}
	for _, end := range []string{"\n", " stack traceback"} {
		if i := strings.Index(msg, end); i >= 0 {
			msg = msg[:i]
		}
	}
	code, text, _ := strings.Cut(msg, " ")
	if code == "" || strings.IndexFunc(code, func(r rune) bool { return !unicode.IsUpper(r) }) >= 0 {
		return redisReply{code: "ERR", text: msg}
	}
	return redisReply{code: code, text: text}
}

// String is the reply as Redis words it, cut short.
func (r redisReply) String() string {
	if r.code == "ERR" {
		return short(r.text)
	}
	return short(r.code + " " + r.text)
}

// aclDenied is what an ACL refused: a command, a key or a channel.
type aclDenied int

const (
	deniedNone aclDenied = iota
	deniedCommand
	deniedKey
	deniedChannel
)

// denial reports whether a reply is an ACL refusal, and of what. Redis
// answers NOPERM to a command it refuses, and a script's refused call with
// NOPERM (7.2+) or "ERR The user executing the script can't ..." (7.0).
func (r redisReply) denial() aclDenied {
	text := strings.ToLower(r.text)
	switch {
	case r.code == "NOPERM":
	case r.code == "ERR" && strings.HasPrefix(text, "the user executing the script"):
	default:
		return deniedNone
	}
	// Redis 7.0: "... access one of the keys used as arguments", "... can't
	// access at least one of the keys mentioned in the command"; 7.2: "No
	// permissions to access a key". A command's name ('keys') may be in the
	// text too, so whole phrases are matched.
	switch {
	case strings.Contains(text, "one of the keys") || strings.Contains(text, "access a key"):
		return deniedKey
	case strings.Contains(text, "one of the channels") || strings.Contains(text, "access a channel") ||
		strings.Contains(text, "publish to the channel"):
		return deniedChannel
	}
	return deniedCommand
}

// explainReply is explain for an error reply of Redis.
func explainReply(msg string, fc failContext) string {
	r := parseReply(msg)
	detail := paren(r.String())
	text := strings.ToLower(r.text)
	switch d := r.denial(); d {
	case deniedCommand:
		return fmt.Sprintf("the Redis user %s may not %s", userName(fc.user), fc.access.verb()) + paren("ACL: "+r.String())
	case deniedKey:
		return fmt.Sprintf("the Redis user %s may not use the keys of prefix %s: is --prefix right?", userName(fc.user), strconv.Quote(fc.prefix)) + paren("ACL: "+r.String())
	case deniedChannel:
		return fmt.Sprintf("the Redis user %s may not use the channel %s: is --prefix right?", userName(fc.user), strconv.Quote(fc.channel)) + paren("ACL: "+r.String())
	}
	switch {
	case r.code == "WRONGPASS" || strings.Contains(text, "unauthenticated") ||
		strings.Contains(text, "called without any password configured"):
		return "authentication failed for user " + userName(fc.user) + detail
	case r.code == "NOAUTH":
		return "authentication failed: the server requires a password and the URL gives none" + detail
	case r.code == "READONLY":
		return "connected to a read-only replica: point --redis at the master, or use --cluster for Redis Cluster" + detail
	case r.code == "MASTERDOWN":
		return "connected to a replica that lost its master and serves no data: point --redis at the master" + detail
	case r.code == "LOADING":
		return "the server is still loading its data set into memory: try again in a moment" + detail
	case r.code == "CLUSTERDOWN":
		return "the Redis Cluster is down (a hash slot has no master): check CLUSTER INFO" + detail
	case r.code == "TRYAGAIN":
		return "the Redis Cluster is moving this circuit's slot: try again" + detail
	case r.code == "MOVED" || r.code == "ASK":
		return "the server is a Redis Cluster node: connect with --cluster host:port,..." + detail
	case strings.Contains(text, "cluster support disabled"):
		return "the server is not a Redis Cluster: connect with --redis URL" + detail
	case r.code == "OOM":
		return "the server is out of memory (maxmemory) and refuses writes" + detail
	case r.code == "BUSY":
		return "the server is busy running a long script: try again (or SCRIPT KILL it)" + detail
	case strings.Contains(text, "max number of clients"):
		return "the server has as many clients as maxclients allows" + detail
	}
	return "Redis answered with an error" + detail
}

// explainNet is explain for the network: refused, timed out, TLS, DNS.
func explainNet(err error, fc failContext) (string, bool) {
	var (
		opErr   *net.OpError
		dnsErr  *net.DNSError
		verify  *tls.CertificateVerificationError
		record  tls.RecordHeaderError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		netErr  net.Error
	)
	// The detail is the network's own words, without the store's and
	// go-redis's wrapping.
	detail := innermost(err).Error()
	if errors.As(err, &opErr) {
		detail = opErr.Error()
	}
	switch {
	case errors.As(err, &dnsErr):
		return "cannot resolve the server's host name" + paren(dnsErr.Error()), true
	case errors.Is(err, syscall.ECONNREFUSED) && fc.live:
		return "nothing accepts connections there any more: is Redis running?" + paren(detail), true
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing accepts connections there: is Redis running, is the port right?" + paren(detail), true
	case errors.As(err, &unknown):
		return "the server's TLS certificate is not trusted: give its CA with SSL_CERT_FILE" + paren(unknown.Error()), true
	case errors.As(err, &host):
		return "the server's TLS certificate is for another host" + paren(host.Error()), true
	case errors.As(err, &invalid):
		return "the server's TLS certificate is not valid" + paren(invalid.Error()), true
	case errors.As(err, &verify):
		return "the server's TLS certificate is not trusted" + paren(verify.Error()), true
	case errors.As(err, &record):
		return "the server does not speak TLS there: use redis://, or its TLS port" + paren(record.Error()), true
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &netErr) && netErr.Timeout()):
		cause := "no reply in time"
		if fc.timeout > 0 {
			cause = fmt.Sprintf("no reply within --timeout %s", fc.timeout)
		}
		hint := ": is the address right, is the server up and not overloaded?"
		if fc.tls {
			// A TLS handshake with a plain port waits for a reply that
			// never comes.
			hint = ": is the address the server's TLS port, is the server up and not overloaded?"
		}
		return cause + hint + paren(detail), true
	case (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)) && fc.live:
		return "the server closed the connection" + paren(detail), true
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET):
		return "the server closed the connection: if it speaks TLS only, use rediss://" + paren(detail), true
	}
	return "", false
}

// innermost is the last error of err's chain of single wraps.
func innermost(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// userName shows the Redis user in a message.
func userName(user string) string {
	if user == "" {
		user = "default"
	}
	return strconv.Quote(user)
}

// paren is " (s)" with s on one line, or nothing for an empty s.
func paren(s string) string {
	s = oneLine(s)
	if s == "" {
		return ""
	}
	return " (" + short(s) + ")"
}

// short cuts s to maxDetail bytes, on a rune boundary.
func short(s string) string {
	s = strings.TrimSpace(s)
	if len(s) <= maxDetail {
		return s
	}
	cut := maxDetail
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
