package httpapi

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/region"
)

// TestReadTimeouts: on both servers a request's header must arrive within
// the header timeout (a stalled header loses its connection long before
// the whole-request timeout), while its body may take longer than that.
// The timeouts are shortened here; what is asserted is the outcome, not
// how long it took.
func TestReadTimeouts(t *testing.T) {
	const headerTimeout = 200 * time.Millisecond
	for _, kind := range serverKinds {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, tableRuntime(), region.Config{HTTPServer: kind})
			s.readHeaderTimeout, s.readTimeout = headerTimeout, time.Minute
			addr := strings.TrimPrefix(serve(t, s), "http://")
			dial := func() net.Conn {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}

			// A stalled header: the server closes the connection (with or
			// without a 408 first) well within the test's 20 s, which the
			// one-minute whole-request timeout would not.
			c := dial()
			if _, err := c.Write([]byte("POST /v1/holds HTTP/1.1\r\nHost: x\r\n")); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			got, err := readUntilClosed(c)
			if err != nil {
				t.Fatalf("stalled header: the connection was not closed: %v (read %q)", err, got)
			}
			if got != "" && !strings.HasPrefix(got, "HTTP/1.1 408") {
				t.Errorf("stalled header: answered %q", got)
			}

			// A header in time and a body after several header timeouts:
			// served.
			body := `{"items":[{"sku":"A","qty":2}]}`
			c = dial()
			hdr := "POST /v1/holds HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
				strconv.Itoa(len(body)) + "\r\n\r\n"
			if _, err := c.Write([]byte(hdr)); err != nil {
				t.Fatal(err)
			}
			// Not synchronisation: the body is sent late on purpose, after
			// the header timeout has passed three times over.
			time.Sleep(3 * headerTimeout)
			if _, err := c.Write([]byte(body)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("slow body: %v", err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusCreated {
				t.Errorf("slow body: status %d, want 201", res.StatusCode)
			}
		})
	}
}

// readUntilClosed reads c until the peer closes it (nil error) or the read
// fails otherwise (that error).
func readUntilClosed(c net.Conn) (string, error) {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				return b.String(), nil
			}
			return b.String(), err
		}
	}
}
