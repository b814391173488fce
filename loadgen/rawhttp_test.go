package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadResponse(t *testing.T) {
	for _, tc := range []struct {
		name, in   string
		status     int
		keep       bool
		body       string
		wantErr    bool
		restPrefix string // what must be left unread (the next response)
	}{
		{name: "content-length", in: "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"id\":\"x\"}\nHTTP/1.1", status: 201, keep: true, body: "{\"id\":\"x\"}\n", restPrefix: "HTTP/1.1"},
		{name: "case-insensitive", in: "HTTP/1.1 409 Conflict\r\ncontent-LENGTH:  2\r\nCONNECTION: Close\r\n\r\n{}", status: 409, keep: false, body: "{}"},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nabcd\r\n2\r\nef\r\n0\r\nX-Trailer: 1\r\n\r\nnext", status: 200, keep: true, body: "abcdef", restPrefix: "next"},
		{name: "no-content", in: "HTTP/1.1 204 No Content\r\n\r\nnext", status: 204, keep: true, restPrefix: "next"},
		{name: "until-close", in: "HTTP/1.0 200 OK\r\n\r\nall of it", status: 200, keep: false, body: "all of it"},
		{name: "bad-status", in: "HTTX/1.1 200 OK\r\n\r\n", wantErr: true},
		{name: "bad-length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantErr: true},
		{name: "short-body", in: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", wantErr: true},
		{name: "bad-chunk", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", wantErr: true},
		{name: "huge", in: "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", wantErr: true},
		{name: "truncated-headers", in: "HTTP/1.1 200 OK\r\nContent-Le", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tc.in))
			var body bytes.Buffer
			body.WriteString("stale")
			st, keep, err := readResponse(br, &body)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("accepted: status %d body %q", st, body.String())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st != tc.status || keep != tc.keep || body.String() != tc.body {
				t.Fatalf("got %d keep=%v body %q", st, keep, body.String())
			}
			rest := make([]byte, 64)
			n, _ := br.Read(rest)
			if !strings.HasPrefix(string(rest[:n]), tc.restPrefix) {
				t.Fatalf("left %q unread, want prefix %q", rest[:n], tc.restPrefix)
			}
		})
	}
}

// The minimal client against net/http's server: keep-alive, a chunked
// (flushed) body, and a server that closes the connection.
func TestRawConnAgainstNetHTTP(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			w.Write([]byte("part1-"))
			w.(http.Flusher).Flush() // forces chunked encoding
			w.Write([]byte("part2"))
		case "/close":
			w.Header().Set("Connection", "close")
			w.Write([]byte("bye"))
		default:
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(r.Header.Get("Authorization")))
		}
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	rc := &rawConn{addr: host, timeout: 5 * time.Second}
	defer rc.close()
	var body bytes.Buffer
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		st, err := rc.roundTrip(ctx, appendRequest(nil, "POST", host, "/x", "Bearer t", []byte(`{}`)), &body)
		if err != nil || st != 201 || body.String() != "Bearer t" {
			t.Fatalf("plain: %d %q %v", st, body.String(), err)
		}
	}
	st, err := rc.roundTrip(ctx, appendRequest(nil, "GET", host, "/chunked", "", nil), &body)
	if err != nil || st != 200 || body.String() != "part1-part2" {
		t.Fatalf("chunked: %d %q %v", st, body.String(), err)
	}
	if conns.Load() != 1 {
		t.Fatalf("%d connections for 4 requests: keep-alive broken", conns.Load())
	}
	st, err = rc.roundTrip(ctx, appendRequest(nil, "GET", host, "/close", "", nil), &body)
	if err != nil || st != 200 || body.String() != "bye" || rc.conn != nil {
		t.Fatalf("close: %d %q %v conn=%v", st, body.String(), err, rc.conn)
	}
	// The next request redials.
	st, err = rc.roundTrip(ctx, appendRequest(nil, "POST", host, "/x", "", nil), &body)
	if err != nil || st != 201 || conns.Load() != 2 {
		t.Fatalf("redial: %d %v conns %d", st, err, conns.Load())
	}
	// A cancelled context fails fast.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := rc.roundTrip(cctx, appendRequest(nil, "GET", host, "/", "", nil), &body); err == nil {
		t.Fatal("cancelled context accepted")
	}
}

// TestRawConnDeadlineRefreshedLazily: the connection's deadline is set
// once for a run of quick requests (not before each), and a request the
// server never answers still fails with a timeout, within the deadline
// set before it.
func TestRawConnDeadlineRefreshedLazily(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const answered = 5
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for i := 0; ; i++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if i >= answered {
				// Stop answering; keep the connection open until the
				// client gives up and closes it.
				_, _ = br.ReadByte()
				return
			}
			req.Body.Close()
			if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")); err != nil {
				return
			}
		}
	}()
	host := ln.Addr().String()
	rc := &rawConn{addr: host, timeout: time.Second}
	defer rc.close()
	var body bytes.Buffer
	ctx := context.Background()
	var first time.Time
	for i := 0; i < answered; i++ {
		st, err := rc.roundTrip(ctx, appendRequest(nil, "GET", host, "/", "", nil), &body)
		if err != nil || st != 200 {
			t.Fatalf("request %d: %d %v", i, st, err)
		}
		if i == 0 {
			first = rc.deadline
		}
	}
	if first.IsZero() {
		t.Fatal("no deadline set on the connection")
	}
	// The quick requests ran well within a quarter of the timeout of the
	// first one (checked, so that a slow machine cannot fail the test by
	// making a refresh due): then none of them moved the deadline.
	if time.Until(first) >= rc.timeout-rc.timeout/4 && !rc.deadline.Equal(first) {
		t.Fatalf("deadline moved from %v to %v within its first quarter", first, rc.deadline)
	}
	set := rc.deadline
	_, err = rc.roundTrip(ctx, appendRequest(nil, "GET", host, "/", "", nil), &body)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("unanswered request: %v, want a timeout", err)
	}
	if time.Now().Before(set) {
		t.Fatalf("timed out before the deadline %v", set)
	}
}
