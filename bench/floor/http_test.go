package floor

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
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
// process) per request: what any HTTP hold costs before its own work.
func BenchmarkBareHTTPFloor(b *testing.B) {
	for _, srv := range []string{"nethttp", "fasthttp"} {
		for _, conns := range []int{1, 64} {
			b.Run(fmt.Sprintf("server=%s/conns=%d", srv, conns), func(b *testing.B) {
				addr, stop := serve(b, srv)
				defer stop()
				drive(b, addr, conns)
			})
		}
	}
}

func serve(b *testing.B, kind string) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	switch kind {
	case "nethttp":
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
		return ln.Addr().String(), func() { s.Close() }
	default:
		s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
			_ = ctx.PostBody()
			ctx.SetStatusCode(fasthttp.StatusCreated)
			ctx.SetContentType("application/json")
			ctx.SetBody(respBody)
		}}
		go s.Serve(ln)
		return ln.Addr().String(), func() { s.Shutdown() }
	}
}

func drive(b *testing.B, addr string, conns int) {
	per := b.N / conns
	if per == 0 {
		per = 1
	}
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := client(addr, per); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	n := float64(per * conns)
	b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-us/req")
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
