package floor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestFrame(t *testing.T) {
	two := append(append([]byte{}, request...), request...)
	for _, tc := range []struct {
		name string
		buf  string
		want int
		err  bool
	}{
		{"empty", "", 0, false},
		{"header cut", string(request[:20]), 0, false},
		{"body cut", string(request[:len(request)-1]), 0, false},
		{"whole", string(request), len(request), false},
		{"pipelined: the first only", string(two), len(request), false},
		{"no body", "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET", len("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false},
		{"header name in any case", "POST / HTTP/1.1\r\ncontent-length:  2\r\n\r\n{}", len("POST / HTTP/1.1\r\ncontent-length:  2\r\n\r\n{}"), false},
		{"bad length", "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 0, true},
		{"chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 0, true},
		{"header too long", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", maxFloorHeader), 0, true},
	} {
		n, err := frame([]byte(tc.buf))
		if n != tc.want || (err != nil) != tc.err {
			t.Errorf("%s: frame = %d, %v; want %d, error %v", tc.name, n, err, tc.want, tc.err)
		}
		if err != nil && !errors.Is(err, errFraming) {
			t.Errorf("%s: error %v is not errFraming", tc.name, err)
		}
	}
}

// TestServersAnswer: every server kind answers a request split across
// writes, then three pipelined in one write, in order, on one connection,
// and then as many again through the floor's client.
func TestServersAnswer(t *testing.T) {
	for _, kind := range []string{"nethttp", "fasthttp", "gnet", "fasthttp-handoff", "gnet-handoff", "gnet-handoff-fdatasync"} {
		t.Run(kind, func(t *testing.T) {
			s, err := start(kind, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer s.stop()
			conn, err := net.Dial("tcp", s.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(conn)
			// Two writes: the server may read them apart or together, and
			// must answer once either way.
			half := len(request) / 2
			if _, err := conn.Write(request[:half]); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Write(request[half:]); err != nil {
				t.Fatal(err)
			}
			readAnswers(t, br, 1)
			var three []byte
			for range 3 {
				three = append(three, request...)
			}
			if _, err := conn.Write(three); err != nil {
				t.Fatal(err)
			}
			readAnswers(t, br, 3)
			if err := client(s.addr, 5); err != nil {
				t.Fatal(err)
			}
			if st := s.stats(); strings.Contains(kind, "handoff") && st.items != 1+3+5 {
				t.Errorf("committer answered %d requests in %d groups, want 9", st.items, st.groups)
			}
		})
	}
}

func readAnswers(t *testing.T, br *bufio.Reader, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		status, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if !strings.HasPrefix(status, "HTTP/1.1 201") {
			t.Fatalf("answer %d: status %q", i, status)
		}
		length := -1
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
			if l == "\r\n" {
				break
			}
			if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "Content-Length") {
				if _, err := fmt.Sscan(strings.TrimSpace(v), &length); err != nil {
					t.Fatalf("answer %d: Content-Length %q", i, v)
				}
			}
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatalf("answer %d body: %v", i, err)
		}
		if string(body) != string(respBody) {
			t.Fatalf("answer %d body %q", i, body)
		}
	}
}
