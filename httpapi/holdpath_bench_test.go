package httpapi

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// holdPathRuntime answers every hold with the same hold, allocating
// nothing: what the benchmarks below count is the HTTP layer's own cost.
func holdPathRuntime() *fakeRuntime {
	f := newFake()
	h := &escrow.Hold{ID: "eu-000000000000000001", State: escrow.Held, Lines: []escrow.Line{{SKU: "sku-000001", Qty: 1}},
		Created: fixedTime, Expires: fixedTime.Add(10 * time.Minute), MaxExpires: fixedTime.Add(time.Hour), Updated: fixedTime}
	f.do = func(cmd escrow.Command) (escrow.Reply, error) {
		return escrow.Reply{Kind: cmd.Kind, Hold: h}, nil
	}
	return f
}

var holdPathBody = []byte(`{"items":[{"sku":"sku-000001","qty":1}],"ttl":"10m0s"}`)

// discardWriter is a reusable http.ResponseWriter that keeps nothing.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

// holdRequesters return a function that serves one POST /v1/holds through
// each server's handler (routing, auth wrapper, decode, command, encode,
// headers), without the connection, and returns its status.
var holdRequesters = map[string]func(t testing.TB) func() int{
	region.HTTPServerNetHTTP: func(t testing.TB) func() int {
		s, err := New(holdPathRuntime(), region.Config{Logger: discardLogger})
		if err != nil {
			t.Fatal(err)
		}
		body := bytes.NewReader(holdPathBody)
		req, err := http.NewRequest(http.MethodPost, "http://x/v1/holds", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		w := &discardWriter{h: http.Header{}}
		return func() int {
			body.Reset(holdPathBody)
			clear(w.h)
			s.ServeHTTP(w, req)
			return w.code
		}
	},
	region.HTTPServerFastHTTP: func(t testing.TB) func() int {
		s, err := New(holdPathRuntime(), region.Config{HTTPServer: region.HTTPServerFastHTTP, Logger: discardLogger})
		if err != nil {
			t.Fatal(err)
		}
		h := s.fastHandler(context.Background(), s.newFastRoutes())
		var ctx fasthttp.RequestCtx
		var req fasthttp.Request
		req.Header.SetMethod(http.MethodPost)
		req.SetRequestURI("/v1/holds")
		req.Header.SetContentType("application/json")
		req.SetBody(holdPathBody)
		ctx.Init(&req, nil, nil)
		return func() int {
			ctx.Response.Reset()
			h(&ctx)
			return ctx.Response.StatusCode()
		}
	},
}

var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestHoldHandlerAllocations bounds the HTTP layer's allocations per hold
// request: on fasthttp 2 (the SKU string and the command's lines, both
// kept by the command; the body and its items are pooled, an equal ttl
// string reused), on net/http 5 more (the statusWriter, the
// MaxBytesReader, the Location string and its header slice). Counted with
// the benchmark's fake region, which allocates nothing. Before issue 22's
// last passes: 12 and 15, then 5 and 10.
func TestHoldHandlerAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	for kind, max := range map[string]float64{region.HTTPServerNetHTTP: 7, region.HTTPServerFastHTTP: 2} {
		serveOne := holdRequesters[kind](t)
		if st := serveOne(); st != http.StatusCreated {
			t.Fatalf("%s: status %d", kind, st)
		}
		if n := testing.AllocsPerRun(200, func() { serveOne() }); n > max {
			t.Errorf("%s: %.1f allocations per hold request, want at most %.0f", kind, n, max)
		}
	}
}

// BenchmarkHoldHandler: allocations and CPU per hold request of the HTTP
// layer on each server.
//
//	go test ./httpapi -run '^$' -bench HoldHandler -benchmem
func BenchmarkHoldHandler(b *testing.B) {
	for _, kind := range serverKinds {
		b.Run(kind, func(b *testing.B) {
			serveOne := holdRequesters[kind](b)
			b.ReportAllocs()
			for b.Loop() {
				if st := serveOne(); st != http.StatusCreated {
					b.Fatalf("status %d", st)
				}
			}
		})
	}
}
