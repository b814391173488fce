package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// createSequence is a run of create bodies in which each one differs from
// the one before in what a reused (pooled) body could carry over: more and
// fewer items, a ttl and none, an equal ttl (reused string) and a new one,
// the encoding/json fallback (metadata, partial, cart) and back.
var createSequence = []string{
	`{"items":[{"sku":"a","qty":1},{"sku":"b","qty":2},{"sku":"c","qty":3}],"ttl":"1m0s"}`,
	`{"items":[{"sku":"d","qty":4}]}`,
	`{"items":[{"sku":"e","qty":5}],"ttl":"2m0s"}`,
	`{"items":[{"sku":"e","qty":5}],"ttl":"2m0s"}`,
	`{"items":[{"sku":"f","qty":6},{"sku":"g","qty":7}],"ttl":"3m0s"}`,
	`{"items":[{"sku":"h","qty":8}],"metadata":{"k":1},"partial":true,"cart":"c1"}`,
	`{"items":[{"sku":"i","qty":9}]}`,
	`{"items":[{"sku":"j","qty":10}],"ttl":"3m0s"}`,
}

// wantCommand is the command a body means, decoded from scratch by
// encoding/json: what a pooled decode must give for every body.
func wantCommand(t *testing.T, s *Server, body string) escrow.Command {
	t.Helper()
	var req api.CreateHoldRequest
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	cmd := escrow.Command{Kind: escrow.CmdHold, Partial: req.Partial, Cart: req.Cart}
	for _, it := range req.Items {
		cmd.Lines = append(cmd.Lines, escrow.Line{SKU: it.SKU, Qty: it.Qty})
	}
	if req.TTL != "" {
		d, err := s.parseTTL(req.TTL)
		if err != nil {
			t.Fatal(err)
		}
		cmd.TTL = d
	}
	if len(req.Metadata) > 0 {
		var c bytes.Buffer
		if err := json.Compact(&c, req.Metadata); err != nil {
			t.Fatal(err)
		}
		cmd.Meta = c.String()
	}
	return cmd
}

// creator serves create bodies through one server's handler (as
// holdRequesters do) and returns the commands its region was given.
func creator(t *testing.T, kind string) (s *Server, serve func(body string) escrow.Command) {
	t.Helper()
	var mu sync.Mutex
	var got escrow.Command
	f := holdPathRuntime()
	inner := f.do
	f.do = func(cmd escrow.Command) (escrow.Reply, error) {
		mu.Lock()
		got = cmd
		mu.Unlock()
		return inner(cmd)
	}
	s, err := New(f, region.Config{HTTPServer: kind, Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	var status func(body string) int
	switch kind {
	case region.HTTPServerFastHTTP:
		h := s.fastHandler(context.Background(), s.newFastRoutes())
		status = func(body string) int {
			var ctx fasthttp.RequestCtx
			var req fasthttp.Request
			req.Header.SetMethod(http.MethodPost)
			req.SetRequestURI("/v1/holds")
			req.Header.SetContentType("application/json")
			req.SetBody([]byte(body))
			ctx.Init(&req, nil, nil)
			h(&ctx)
			return ctx.Response.StatusCode()
		}
	default:
		status = func(body string) int {
			req, err := http.NewRequest(http.MethodPost, "http://x/v1/holds", bytes.NewReader([]byte(body)))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			w := &discardWriter{h: http.Header{}}
			s.ServeHTTP(w, req)
			return w.code
		}
	}
	return s, func(body string) escrow.Command {
		t.Helper()
		if st := status(body); st != http.StatusCreated {
			t.Fatalf("%s: %s: status %d", kind, body, st)
		}
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

// sameCommand reports what differs between the command a server gave its
// region and the one the body means.
func sameCommand(got, want escrow.Command) bool {
	got.IdemHash, want.IdemHash = 0, 0
	return reflect.DeepEqual(got, want)
}

// TestPooledCreateBodyForgets: the create body is pooled (its items' array
// and last ttl reused), so each request must still give the region exactly
// the command its own body means, on both servers, whatever came before
// it on the same pooled body. Run single-threaded, the pool hands back the
// same body each time.
func TestPooledCreateBodyForgets(t *testing.T) {
	for _, kind := range serverKinds {
		s, serve := creator(t, kind)
		for round := 0; round < 3; round++ {
			for i, body := range createSequence {
				got, want := serve(body), wantCommand(t, s, body)
				if !sameCommand(got, want) {
					t.Errorf("%s round %d body %d: command %+v, want %+v", kind, round, i, got, want)
				}
			}
		}
	}
}

// TestPooledCreateBodyPlantedStale shows that the check above catches a
// body that is reused without being emptied: decoded into a second time
// without releaseCreateBody, a body without ttl keeps the last one's.
func TestPooledCreateBodyPlantedStale(t *testing.T) {
	s, err := New(holdPathRuntime(), region.Config{Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	cb := new(createBody)
	if !parseCreateFast([]byte(createSequence[0]), &cb.req, &cb.lastTTL) {
		t.Fatal("fast parse refused the first body")
	}
	// The planted bug: no releaseCreateBody between the two requests.
	if !parseCreateFast([]byte(createSequence[1]), &cb.req, &cb.lastTTL) {
		t.Fatal("fast parse refused the second body")
	}
	got := escrow.Command{Kind: escrow.CmdHold}
	for _, it := range cb.req.Items {
		got.Lines = append(got.Lines, escrow.Line{SKU: it.SKU, Qty: it.Qty})
	}
	if cb.req.TTL != "" {
		d, err := s.parseTTL(cb.req.TTL)
		if err != nil {
			t.Fatal(err)
		}
		got.TTL = d
	}
	if sameCommand(got, wantCommand(t, s, createSequence[1])) {
		t.Fatal("a body reused without release gave the right command: the check cannot see a stale ttl")
	}
	if got.TTL != time.Minute {
		t.Fatalf("planted stale ttl: got %v, want the first body's 1m", got.TTL)
	}
}

// TestParseBodyTTLCached: a pooled body's cached ttl answers exactly as
// parseTTL, value and error, whatever came before it on that body and on
// whichever server (the range is each server's own).
func TestParseBodyTTLCached(t *testing.T) {
	servers := []*Server{{}, {maxLifetime: 20 * time.Minute}}
	ttls := []string{"10m", "10m", "1h", "10m", "+10m", "10m", "-1m", "1ms", "1ms", "x", "10m", "90m", "90m", "25h", "25h", "10m0s", "10m"}
	cb := acquireCreateBody()
	defer releaseCreateBody(cb)
	for i := range 3 * len(ttls) {
		s := servers[i%len(servers)]
		v := ttls[i%len(ttls)]
		want, wantErr := s.parseTTL(v)
		got, err := s.parseBodyTTL(cb, v)
		if got != want || fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("step %d, ttl %q, max %v: got %v, %v; want %v, %v", i, v, s.maxLifetime, got, err, want, wantErr)
		}
	}
}
