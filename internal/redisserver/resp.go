package redisserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// ReplyError is an error reply from Redis ("-ERR ...", "-NOAUTH ...").
// [Server.Do] returns it as its error; inside an array reply it appears as
// an element.
type ReplyError string

// Error returns the reply text without the leading '-'.
func (e ReplyError) Error() string { return string(e) }

// maxBulk bounds the bulk and array lengths the reader accepts, so a broken
// reply cannot make it allocate without limit.
const maxBulk = 512 << 20

// defaultCommandTimeout bounds a command when ctx has no deadline.
const defaultCommandTimeout = 5 * time.Second

// respConn is a minimal RESP2 connection for the harness's own commands, so
// the package needs no go-redis client (and starts no goroutines).
type respConn struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialResp connects to addr and authenticates as user/password (skipped when
// password is empty).
func dialResp(ctx context.Context, addr, user, password string) (*respConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &respConn{conn: conn, r: bufio.NewReader(conn)}
	if password != "" {
		if _, err := c.do(ctx, "AUTH", user, password); err != nil {
			conn.Close()
			return nil, fmt.Errorf("AUTH as %s: %w", user, err)
		}
	}
	return c, nil
}

func (c *respConn) close() error { return c.conn.Close() }

// do sends one command and reads its reply. A Redis error reply is returned
// as a ReplyError error; the connection stays usable after it.
func (c *respConn) do(ctx context.Context, args ...string) (any, error) {
	if len(args) == 0 {
		return nil, errors.New("no command")
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultCommandTimeout)
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if _, err := c.conn.Write(encodeCommand(args)); err != nil {
		return nil, err
	}
	v, err := readReply(c.r)
	if err != nil {
		return nil, err
	}
	if e, ok := v.(ReplyError); ok {
		return nil, e
	}
	return v, nil
}

// encodeCommand encodes args as a RESP array of bulk strings.
func encodeCommand(args []string) []byte {
	b := make([]byte, 0, 16+16*len(args))
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}

// readReply reads one RESP2 reply: a simple string or bulk string as string,
// an integer as int64, a null as nil, an error as ReplyError, an array as
// []any.
func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("malformed reply line %q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, nil
	case '-':
		return ReplyError(body), nil
	case ':':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("malformed integer reply %q", body)
		}
		return n, nil
	case '$':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil || n < -1 || n > maxBulk {
			return nil, fmt.Errorf("malformed bulk length %q", body)
		}
		if n == -1 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return nil, errors.New("bulk string not terminated by CRLF")
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil || n < -1 || n > maxBulk {
			return nil, fmt.Errorf("malformed array length %q", body)
		}
		if n == -1 {
			return nil, nil
		}
		out := make([]any, 0, min(n, 1024))
		for range n {
			v, err := readReply(r)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("unsupported reply type %q", kind)
	}
}
