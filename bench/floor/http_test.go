package floor

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// The request and answer of a hold, in size: a POST with a small JSON body
// answered by 201 with a small JSON body, on a keep-alive connection.
var (
	reqBody  = []byte(`{"items":[{"sku":"sku-000001","qty":1}],"ttl":"10m0s"}`)
	respBody = []byte(`{"id":"bench-0ABCDEFGHJ0ABCDEFG","state":"held","items":[{"sku":"sku-000001","qty":1}],"created":"2026-01-01T00:00:00Z","expires":"2026-01-01T00:10:00Z"}`)
	request  = []byte("POST /v1/holds HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(reqBody)) + "\r\n\r\n" + string(reqBody))
)

// BenchmarkBareHTTPFloor: conns closed-loop clients (the minimal raw
// client of holdfast's load generator: one write of a prebuilt request,
// one buffered read of the answer) against a server that reads the body
// and answers fixed bytes. cpu-us/req is the CPU of client and server (one
// process, or both processes with FLOOR_SPLIT=1) per request: what any
// HTTP hold costs before its own work. server=gnet is an event loop
// (gnet_test.go: a measurement floor, not a production parser).
func BenchmarkBareHTTPFloor(b *testing.B) {
	for _, srv := range []string{"nethttp", "fasthttp", "gnet"} {
		for _, conns := range []int{1, 64, 256} {
			b.Run(fmt.Sprintf("server=%s/conns=%d", srv, conns), func(b *testing.B) {
				drive(b, serve(b, srv), conns)
			})
		}
	}
}

// floorServer is a running server of the floor, in this process or, with
// FLOOR_SPLIT=1, in a child process (TestFloorServerChild) so that the
// client's and the server's CPU are measured apart.
type floorServer struct {
	addr  string
	stop  func()
	stats func() serverStats
}

// serverStats is a server's cumulative CPU (zero when it shares the
// client's process) and its committer's groups and requests (zero without
// a hand-off).
type serverStats struct {
	cpu           time.Duration
	groups, items int64
}

func serve(b *testing.B, kind string) floorServer {
	if os.Getenv("FLOOR_SPLIT") != "" {
		s, err := serveChild(kind)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	s, err := start(kind, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// start runs a server of the given kind on a free loopback port: nethttp,
// fasthttp or gnet answer in the request's own goroutine or loop; the
// -handoff kinds (fasthttp-handoff, gnet-handoff, and their -fdatasync
// variants, whose committer syncs a file in dir) go through a committer.
func start(kind, dir string) (floorServer, error) {
	var c *committer
	if base, ok := strings.CutSuffix(kind, "-handoff-fdatasync"); ok {
		var err error
		if c, err = newCommitter(dir, true); err != nil {
			return floorServer{}, err
		}
		kind = base
	} else if base, ok := strings.CutSuffix(kind, "-handoff"); ok {
		var err error
		if c, err = newCommitter(dir, false); err != nil {
			return floorServer{}, err
		}
		kind = base
	}
	stats := func() serverStats {
		if c == nil {
			return serverStats{}
		}
		return serverStats{groups: c.groups.Load(), items: c.items.Load()}
	}
	stopCommitter := func() {
		if c != nil {
			c.stop()
		}
	}
	if kind == "gnet" {
		addr, stop, err := serveGnet(c)
		if err != nil {
			stopCommitter()
			return floorServer{}, err
		}
		return floorServer{addr: addr, stats: stats, stop: func() { stop(); stopCommitter() }}, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		stopCommitter()
		return floorServer{}, err
	}
	addr := ln.Addr().String()
	switch kind {
	case "nethttp":
		if c != nil {
			ln.Close()
			c.stop()
			return floorServer{}, fmt.Errorf("no hand-off server on net/http")
		}
		s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				return
			}
			h := w.Header()
			h["Content-Type"] = []string{"application/json"}
			h["Content-Length"] = []string{strconv.Itoa(len(respBody))}
			w.WriteHeader(http.StatusCreated)
			w.Write(respBody)
		})}
		go s.Serve(ln)
		return floorServer{addr: addr, stats: stats, stop: func() { s.Close() }}, nil
	case "fasthttp":
		s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
			_ = ctx.PostBody()
			if c != nil {
				// holdfast's pattern: hand the request over, park until
				// the committer has answered its group, then respond.
				w := waiters.Get().(*waiter)
				c.in <- item{wait: w}
				<-w.done
				waiters.Put(w)
			}
			ctx.SetStatusCode(fasthttp.StatusCreated)
			ctx.SetContentType("application/json")
			ctx.SetBody(respBody)
		}}
		go s.Serve(ln)
		return floorServer{addr: addr, stats: stats, stop: func() { s.Shutdown(); stopCommitter() }}, nil
	}
	ln.Close()
	stopCommitter()
	return floorServer{}, fmt.Errorf("unknown server %q", kind)
}

func drive(b *testing.B, srv floorServer, conns int) {
	defer srv.stop()
	per := b.N / conns
	if per == 0 {
		per = 1
	}
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	b.ResetTimer()
	s0 := srv.stats()
	cpu0 := cpuTime()
	start := time.Now()
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := client(srv.addr, per); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	s1 := srv.stats()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	n := float64(per * conns)
	srvCPU := s1.cpu - s0.cpu
	b.ReportMetric(float64((cpu+srvCPU).Microseconds())/n, "cpu-us/req")
	if srvCPU > 0 {
		b.ReportMetric(float64(srvCPU.Microseconds())/n, "srv-cpu-us/req")
		b.ReportMetric(float64(cpu.Microseconds())/n, "cli-cpu-us/req")
	}
	if g := s1.groups - s0.groups; g > 0 {
		b.ReportMetric(float64(s1.items-s0.items)/float64(g), "req/group")
	}
	b.ReportMetric(n/elapsed.Seconds(), "req/s")
}

// client sends n requests on one connection, each after the previous
// answer, and checks every answer's status and body length.
func client(addr string, n int) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	br := bufio.NewReaderSize(conn, 8192)
	for i := 0; i < n; i++ {
		if _, err := conn.Write(request); err != nil {
			return err
		}
		length := -1
		for line := 0; ; line++ {
			l, err := br.ReadSlice('\n')
			if err != nil {
				return err
			}
			if line == 0 && !bytes.HasPrefix(l, []byte("HTTP/1.1 201")) {
				return fmt.Errorf("status line %q", l)
			}
			if len(l) <= 2 {
				break
			}
			if k, v, ok := bytes.Cut(l, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
				length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
			}
		}
		if length != len(respBody) {
			return fmt.Errorf("content length %d, want %d", length, len(respBody))
		}
		if _, err := br.Discard(length); err != nil {
			return err
		}
	}
	return nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
