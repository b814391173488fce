package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// fakeRuntime is a Runtime without a region: DoWithin answers with do.
type fakeRuntime struct {
	reg       *prometheus.Registry
	do        func(cmd escrow.Command) (escrow.Reply, error)
	routedBug atomic.Int64
	canceled  atomic.Int64 // calls whose context was done when do returned
}

func newFake() *fakeRuntime { return &fakeRuntime{reg: prometheus.NewRegistry()} }

func (f *fakeRuntime) Name() string                   { return "eu" }
func (f *fakeRuntime) Ready() bool                    { return true }
func (f *fakeRuntime) Fence() escrow.FenceStatus      { return escrow.FenceStatus{} }
func (f *fakeRuntime) Registry() *prometheus.Registry { return f.reg }
func (f *fakeRuntime) NoteRoutedBug()                 { f.routedBug.Add(1) }
func (f *fakeRuntime) Events() *region.EventLog       { return nil }
func (f *fakeRuntime) DoWithin(ctx context.Context, cmd escrow.Command, timeout time.Duration) (escrow.Reply, error) {
	if f.do == nil {
		return escrow.Reply{}, region.ErrClosed
	}
	rep, err := f.do(cmd)
	if ctx.Err() != nil {
		// A region gives up on a call whose context is done (DoWithin).
		f.canceled.Add(1)
		return escrow.Reply{}, ctx.Err()
	}
	return rep, err
}

var _ Runtime = (*region.Region)(nil)

func newServer(t *testing.T, rt Runtime, cfg region.Config) *Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := New(rt, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type fakeListener struct{ addr net.Addr }

func (f fakeListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (f fakeListener) Close() error              { return nil }
func (f fakeListener) Addr() net.Addr            { return f.addr }

func TestServeRefusesPublicAddressWithoutAuth(t *testing.T) {
	for _, kind := range serverKinds {
		s := newServer(t, newFake(), region.Config{HTTPServer: kind})
		err := s.Serve(context.Background(), fakeListener{&net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 8080}})
		if err == nil || !strings.Contains(err.Error(), "without auth") {
			t.Fatalf("%s: Serve on a public address without tokens: %v", kind, err)
		}
		err = s.Serve(context.Background(), fakeListener{&net.TCPAddr{IP: net.IPv4zero, Port: 8080}})
		if err == nil {
			t.Fatalf("%s: Serve on 0.0.0.0 without tokens was accepted", kind)
		}
	}
}

// TestUnknownHTTPServerRefused: a misspelt http_server is an error, not
// net/http by default.
func TestUnknownHTTPServerRefused(t *testing.T) {
	if _, err := New(newFake(), region.Config{HTTPServer: "fasthtp"}); err == nil || !strings.Contains(err.Error(), "fasthtp") {
		t.Fatalf("http_server fasthtp: %v", err)
	}
	if err := (region.Config{Name: "eu", DataDir: "x", HTTPServer: "gin"}).Validate(); err == nil || !strings.Contains(err.Error(), "http_server") {
		t.Fatalf("Validate http_server gin: %v", err)
	}
}

// record sends req (made by httptest.NewRequest) to the server at base and
// records the answer.
func record(t *testing.T, base string, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	out, err := http.NewRequest(req.Method, base+req.URL.RequestURI(), req.Body)
	if err != nil {
		t.Fatal(err)
	}
	out.Header = req.Header.Clone()
	res, err := http.DefaultClient.Do(out)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	rec := httptest.NewRecorder()
	for k, v := range res.Header {
		rec.Header()[k] = v
	}
	rec.WriteHeader(res.StatusCode)
	if _, err := io.Copy(rec, res.Body); err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestBadTokenFilesAreRefused(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"empty":     ``,
		"short":     "tokens:\n  - {token: short, scopes: [client]}\n",
		"scope":     "tokens:\n  - {token: long-enough-token-123, scopes: [root]}\n",
		"no scopes": "tokens:\n  - {token: long-enough-token-123}\n",
		"unknown":   "tokens:\n  - {token: long-enough-token-123, scopes: [client], colour: red}\n",
		"dup":       "tokens:\n  - {token: long-enough-token-123, scopes: [client]}\n  - {token: long-enough-token-123, scopes: [admin]}\n",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
		os.WriteFile(p, []byte(body), 0o600)
		if _, err := New(newFake(), region.Config{Name: "eu", TokensFile: p}); err == nil {
			t.Errorf("%s: token file accepted", name)
		}
	}
	if _, err := New(newFake(), region.Config{Name: "eu", TokensFile: filepath.Join(dir, "missing.yaml")}); err == nil {
		t.Error("a missing token file was accepted")
	}
}

func TestRoutesAreServed(t *testing.T) {
	s := newServer(t, newFake(), region.Config{})
	routes := s.Routes()
	if len(routes) != 17 {
		t.Fatalf("routes: %v", routes)
	}
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt, " ")
		path = strings.NewReplacer("{id}", "eu-000000000000000000", "{sku}", "A").Replace(path)
		req := httptest.NewRequest(method, path, nil)
		if _, pat := s.mux.Handler(req); pat != rt {
			t.Errorf("%s is routed to %q", rt, pat)
		}
	}
}

// TestRoutedAnswerNeverReachesClient: should a routed answer reach the HTTP
// API anyway, it is a 500 and counted as a bug.
func TestRoutedAnswerNeverReachesClient(t *testing.T) {
	f := newFake()
	f.do = func(cmd escrow.Command) (escrow.Reply, error) {
		return escrow.Reply{Kind: cmd.Kind, Err: &escrow.Error{Code: escrow.CodeRouted, Owner: "us"}}, nil
	}
	for i, kind := range serverKinds {
		base := serve(t, newServer(t, f, region.Config{HTTPServer: kind}))
		req := httptest.NewRequest("POST", "/v1/holds", strings.NewReader(`{"items":[{"sku":"A","qty":1}]}`))
		req.Header.Set("Content-Type", "application/json")
		rec := record(t, base, req)
		if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "routed\"") {
			t.Fatalf("%s: routed problem: %d %s", kind, rec.Code, rec.Body)
		}
		if got := f.routedBug.Load(); got != int64(i+1) {
			t.Fatalf("%s: routed bug = %v", kind, got)
		}
	}
}

// TestTwoServersShareTheRequestCounter: a second API of the same region
// (a restart of the listener) reuses holdfast_http_requests_total.
func TestTwoServersShareTheRequestCounter(t *testing.T) {
	f := newFake()
	a, b := newServer(t, f, region.Config{}), newServer(t, f, region.Config{})
	for _, s := range []*Server{a, b} {
		s.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/healthz", nil))
	}
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "holdfast_http_requests_total" {
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v != 2 {
				t.Fatalf("healthz counted %v times, want 2", v)
			}
			return
		}
	}
	t.Fatal("holdfast_http_requests_total is not registered")
}

// TestServeEndsWhenCancelledAtOnce: a context done as Serve starts (a
// caller failing right after starting it) still ends Serve, on both
// servers. fasthttp's Shutdown is a no-op until its Serve has taken the
// listener, which left Serve accepting forever.
func TestServeEndsWhenCancelledAtOnce(t *testing.T) {
	for _, kind := range serverKinds {
		for i := 0; i < 20; i++ {
			s := newServer(t, newFake(), region.Config{HTTPServer: kind})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			done := make(chan error, 1)
			go func() { done <- s.Serve(ctx, ln) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("%s, run %d: Serve: %v", kind, i, err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("%s, run %d: Serve did not end after its context was done", kind, i)
			}
		}
	}
}
