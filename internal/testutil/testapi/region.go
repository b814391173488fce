// Package testapi is the test support that needs the region runtime and its
// HTTP API: a test region served on loopback and HTTP calls against it. It
// is apart from testutil so that the internal tests of region and gossip,
// which testapi imports, can still use testutil.
package testapi

import (
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/httpapi"
	"github.com/holdfast-io/holdfast/region"
)

// StartRegion opens a region with cfg (cfg.Storage or cfg.DataDir set) and
// serves its HTTP API on 127.0.0.1; it returns the region and the API's
// base URL. Both are closed when the test ends, the server first.
func StartRegion(t testing.TB, cfg region.Config) (*region.Region, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := region.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, ServeAPI(t, r, cfg)
}

// ServeAPI serves the HTTP API of r, configured by cfg (the region's own
// Config: tokens, timeouts, limits), on 127.0.0.1 until the test ends and
// returns its base URL. The server is cfg.HTTPServer, or when that is
// empty the one ForEachServer runs the test under (ServerOf).
func ServeAPI(t testing.TB, r *region.Region, cfg region.Config) string {
	t.Helper()
	if cfg.HTTPServer == "" {
		cfg.HTTPServer = ServerOf(t)
	}
	h, err := httpapi.New(r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPServer != region.HTTPServerFastHTTP {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- h.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serving the API: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// Servers are the HTTP servers of the API (region.Config.HTTPServer).
var Servers = []string{region.HTTPServerNetHTTP, region.HTTPServerFastHTTP}

// ForEachServer runs test once per HTTP server, as subtests named by the
// server; StartRegion and ServeAPI within serve on that server.
func ForEachServer(t *testing.T, test func(t *testing.T)) {
	for _, srv := range Servers {
		t.Run(srv, test)
	}
}

// ServerOf is the HTTP server a test runs under: the name of the
// ForEachServer subtest it is in, net/http outside one.
func ServerOf(t testing.TB) string {
	for _, part := range strings.Split(t.Name(), "/") {
		if part == region.HTTPServerFastHTTP {
			return part
		}
	}
	return region.HTTPServerNetHTTP
}
