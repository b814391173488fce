package floor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
	"golang.org/x/sys/unix"
)

// This file is a MEASUREMENT FLOOR, NOT A PRODUCTION HTTP PARSER. It frames
// just enough HTTP/1.1 for the floor's own client to be answered by an
// event-loop server (gnet: one epoll_wait for many sockets, one read per
// readiness, the loop writes), so that its CPU and syscalls per request can
// be set beside fasthttp's goroutine-per-connection model. It reads a
// request up to "\r\n\r\n", takes the body's length from Content-Length,
// answers pipelined requests in order and keeps every connection alive. It
// does not validate the request line, header names or values, does not
// support chunked bodies, Expect: 100-continue or Connection: close, and
// has no timeouts, limits beyond maxFloorHeader, routes or auth: everything
// holdfast's HTTP API would need before serving a shopper.

// maxFloorHeader bounds a request's header block; a connection that sends
// more without "\r\n\r\n" is closed.
const maxFloorHeader = 8 << 10

var (
	headerEnd     = []byte("\r\n\r\n")
	crlf          = []byte("\r\n")
	contentLength = []byte("Content-Length")
	transferEnc   = []byte("Transfer-Encoding")

	// response is the whole answer of every floor request on gnet, the
	// same status, headers and body as fasthttp's answer (fasthttp adds
	// Server and Date too, so the bytes on the wire are alike).
	response = []byte("HTTP/1.1 201 Created\r\nServer: floor\r\nDate: Mon, 07 Dec 2026 00:00:00 GMT\r\n" +
		"Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(respBody)) + "\r\n\r\n" + string(respBody))

	errFraming = errors.New("floor: request framing not supported")
)

// frame returns the length of the first whole request at the start of buf,
// or 0 if buf does not hold one yet.
func frame(buf []byte) (int, error) {
	end := bytes.Index(buf, headerEnd)
	if end < 0 {
		if len(buf) > maxFloorHeader {
			return 0, fmt.Errorf("%w: header over %d bytes", errFraming, maxFloorHeader)
		}
		return 0, nil
	}
	body := 0
	lines := buf[:end]
	// The first line is the request line; the floor does not look at it.
	if i := bytes.Index(lines, crlf); i >= 0 {
		lines = lines[i+2:]
	} else {
		lines = nil
	}
	for len(lines) > 0 {
		line := lines
		if i := bytes.Index(lines, crlf); i >= 0 {
			line, lines = lines[:i], lines[i+2:]
		} else {
			lines = nil
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		k = bytes.TrimSpace(k)
		switch {
		case bytes.EqualFold(k, contentLength):
			n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil || n < 0 {
				return 0, fmt.Errorf("%w: Content-Length %q", errFraming, v)
			}
			body = n
		case bytes.EqualFold(k, transferEnc):
			return 0, fmt.Errorf("%w: Transfer-Encoding", errFraming)
		}
	}
	total := end + len(headerEnd) + body
	if len(buf) < total {
		return 0, nil
	}
	return total, nil
}

// gnetServer answers floor requests on gnet's event loops. With handoff
// nil every request is answered by the loop that read it, in the same
// OnTraffic (the bare floor). With handoff set each request is queued to
// the committer, which answers it later with AsyncWrite, so that the loop
// writes the answer (the group-commit floor).
type gnetServer struct {
	gnet.BuiltinEventEngine
	handoff *committer
	booted  chan gnet.Engine
}

func (s *gnetServer) OnBoot(eng gnet.Engine) gnet.Action {
	s.booted <- eng
	return gnet.None
}

func (s *gnetServer) OnTraffic(c gnet.Conn) gnet.Action {
	buf, err := c.Peek(-1)
	if err != nil {
		return gnet.Close
	}
	used, reqs := 0, 0
	for {
		n, err := frame(buf[used:])
		if err != nil {
			return gnet.Close
		}
		if n == 0 {
			break
		}
		used += n
		reqs++
		if s.handoff != nil {
			// Never blocks in the floor: the queue holds more requests
			// than the clients can have in flight (one per connection).
			s.handoff.in <- item{conn: c}
		}
	}
	if _, err := c.Discard(used); err != nil {
		return gnet.Close
	}
	if s.handoff != nil || reqs == 0 {
		return gnet.None
	}
	if reqs == 1 {
		_, err = c.Write(response)
	} else {
		// Pipelined requests: their answers in order, in one writev.
		out := make([][]byte, reqs)
		for i := range out {
			out[i] = response
		}
		_, err = c.Writev(out)
	}
	if err != nil {
		return gnet.Close
	}
	return gnet.None
}

// errorsOnly keeps gnet's start-up banner out of the benchmarks' output.
type errorsOnly struct{}

var _ logging.Logger = errorsOnly{}

func (errorsOnly) Debugf(string, ...any) {}
func (errorsOnly) Infof(string, ...any)  {}
func (errorsOnly) Warnf(string, ...any)  {}
func (errorsOnly) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gnet: "+format+"\n", args...)
}
func (errorsOnly) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gnet: "+format+"\n", args...)
	os.Exit(1)
}

// serveGnet starts gnet on a free loopback port with one event loop per
// CPU (gnet's multicore mode; FLOOR_GNET_LOOPS=n sets n loops) and returns
// its address.
func serveGnet(handoff *committer) (string, func(), error) {
	s := &gnetServer{handoff: handoff, booted: make(chan gnet.Engine, 1)}
	ran := make(chan error, 1)
	opts := []gnet.Option{gnet.WithMulticore(true), gnet.WithLogger(errorsOnly{})}
	if v := os.Getenv("FLOOR_GNET_LOOPS"); v != "" {
		// One loop, as Redis serves every socket from one thread.
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return "", nil, fmt.Errorf("FLOOR_GNET_LOOPS=%q: want a count of event loops", v)
		}
		opts = append(opts, gnet.WithNumEventLoop(n))
	}
	go func() { ran <- gnet.Run(s, "tcp://127.0.0.1:0", opts...) }()
	var eng gnet.Engine
	select {
	case eng = <-s.booted:
	case err := <-ran:
		return "", nil, fmt.Errorf("gnet: %w", err)
	}
	fd, err := eng.Dup()
	if err != nil {
		return "", nil, fmt.Errorf("gnet listener: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	unix.Close(fd)
	if err != nil {
		return "", nil, fmt.Errorf("gnet listener address: %w", err)
	}
	in4, ok := sa.(*unix.SockaddrInet4)
	if !ok {
		return "", nil, fmt.Errorf("gnet listener address %T", sa)
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = eng.Stop(ctx)
		<-ran
	}
	return fmt.Sprintf("127.0.0.1:%d", in4.Port), stop, nil
}
