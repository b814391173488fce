package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// rawConn is a minimal HTTP/1.1 client on one keep-alive connection, used
// by one worker at a time. net/http's Transport runs two goroutines per
// connection and hands every request and response across channels; on a
// 2-core machine shared with the server under test that costs a third of
// the benchmark's CPU. The database drivers of the baselines (pgx,
// go-redis) talk on their connection directly, and so does this: one write
// of a prebuilt request, one buffered read of the response, no goroutine.
// It speaks just what the region's API needs: Content-Length or chunked
// bodies, keep-alive, and a reconnect after any error.
type rawConn struct {
	addr    string
	timeout time.Duration
	conn    net.Conn
	br      *bufio.Reader
	stopCtx func() bool // unregisters the cancellation hook of the conn
	// deadline is the one set on conn (zero: none yet). It is moved only
	// when less than 3/4 of timeout is left (refreshDeadline), not before
	// every request: two runtime timer changes per request fewer, and each
	// request still has between 3/4 of timeout and timeout.
	deadline time.Time
}

// maxRespBody bounds what the client reads of one response body.
const maxRespBody = 1 << 20

var errBodyTooLarge = errors.New("response body over 1 MiB")

func (c *rawConn) close() {
	if c.conn != nil {
		c.stopCtx()
		c.conn.Close()
		c.conn = nil
		c.deadline = time.Time{}
	}
}

// refreshDeadline gives the next request at least 3/4 of c.timeout.
func (c *rawConn) refreshDeadline() error {
	now := time.Now()
	if c.deadline.Sub(now) >= c.timeout-c.timeout/4 {
		return nil
	}
	c.deadline = now.Add(c.timeout)
	return c.conn.SetDeadline(c.deadline)
}

func (c *rawConn) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	c.conn = conn
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 8192)
	} else {
		c.br.Reset(conn)
	}
	// A cancelled context unblocks a read or write in flight, as net/http
	// does, by moving the deadline into the past.
	c.stopCtx = context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return nil
}

// roundTrip writes req (a complete HTTP/1.1 request) and reads the
// response into body (reset first). Any error closes the connection; the
// next call redials.
func (c *rawConn) roundTrip(ctx context.Context, req []byte, body *bytes.Buffer) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if c.conn == nil {
		if err := c.dial(ctx); err != nil {
			return 0, err
		}
	}
	if err := c.refreshDeadline(); err != nil {
		c.close()
		return 0, err
	}
	if _, err := c.conn.Write(req); err != nil {
		c.close()
		return 0, fmt.Errorf("write request: %w", err)
	}
	status, keep, err := readResponse(c.br, body)
	if err != nil {
		c.close()
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, err
	}
	if !keep {
		c.close()
	}
	return status, nil
}

// readResponse parses one response: status line, headers, body. keep is
// false when the server closes the connection after it.
func readResponse(br *bufio.Reader, body *bytes.Buffer) (status int, keep bool, err error) {
	body.Reset()
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, fmt.Errorf("read status line: %w", err)
	}
	// "HTTP/1.1 201 Created\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil || status < 100 {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	keep = line[7] == '1' // HTTP/1.1 keeps the connection unless told otherwise
	contentLength := int64(-1)
	chunked := false
	for n := 0; ; n++ {
		if n > 100 {
			return 0, false, errors.New("more than 100 response headers")
		}
		h, err := br.ReadSlice('\n')
		if err != nil {
			return 0, false, fmt.Errorf("read header: %w", err)
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("bad header line %q", h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "content-length"):
			contentLength, err = strconv.ParseInt(string(value), 10, 64)
			if err != nil || contentLength < 0 {
				return 0, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case asciiEqualFold(name, "transfer-encoding"):
			chunked = asciiContainsFold(value, "chunked")
		case asciiEqualFold(name, "connection"):
			if asciiContainsFold(value, "close") {
				keep = false
			}
		}
	}
	switch {
	case status == 204 || status == 304 || status < 200:
		// no body
	case chunked:
		if err := readChunked(br, body); err != nil {
			return 0, false, err
		}
	case contentLength >= 0:
		if contentLength > maxRespBody {
			return 0, false, errBodyTooLarge
		}
		body.Grow(int(contentLength))
		if _, err := io.CopyN(body, br, contentLength); err != nil {
			return 0, false, fmt.Errorf("read body: %w", err)
		}
	default:
		// Body until the server closes the connection.
		if _, err := io.Copy(body, io.LimitReader(br, maxRespBody)); err != nil {
			return 0, false, fmt.Errorf("read body: %w", err)
		}
		keep = false
	}
	return status, keep, nil
}

func readChunked(br *bufio.Reader, body *bytes.Buffer) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("read chunk size: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions
		}
		size, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 32)
		if err != nil {
			return fmt.Errorf("bad chunk size %q", line)
		}
		if size == 0 {
			// Trailers, then the blank line.
			for n := 0; ; n++ {
				t, err := br.ReadSlice('\n')
				if err != nil {
					return fmt.Errorf("read trailer: %w", err)
				}
				if len(bytes.TrimRight(t, "\r\n")) == 0 {
					return nil
				}
				if n > 100 {
					return errors.New("more than 100 trailers")
				}
			}
		}
		if body.Len()+int(size) > maxRespBody {
			return errBodyTooLarge
		}
		if _, err := io.CopyN(body, br, int64(size)); err != nil {
			return fmt.Errorf("read chunk: %w", err)
		}
		if crlf, err := br.ReadSlice('\n'); err != nil || len(bytes.TrimRight(crlf, "\r\n")) != 0 {
			return fmt.Errorf("chunk not followed by CRLF")
		}
	}
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

func asciiContainsFold(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if asciiEqualFold(b[i:i+len(s)], s) {
			return true
		}
	}
	return false
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// appendRequest appends a complete HTTP/1.1 request to dst.
func appendRequest(dst []byte, method, host, path, auth string, body []byte) []byte {
	dst = append(dst, method...)
	dst = append(dst, ' ')
	dst = append(dst, path...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\nUser-Agent: "+userAgent+"\r\n"...)
	if auth != "" {
		dst = append(dst, "Authorization: "...)
		dst = append(dst, auth...)
		dst = append(dst, "\r\n"...)
	}
	if body != nil {
		dst = append(dst, "Content-Type: application/json\r\n"...)
	}
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, body...)
}
