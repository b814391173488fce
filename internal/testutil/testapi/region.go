// Package testapi is the test support that needs the region runtime and its
// HTTP API: a test region served on loopback and HTTP calls against it. It
// is apart from testutil so that the internal tests of region and gossip,
// which testapi imports, can still use testutil.
package testapi

import (
	"context"
	"net/http/httptest"
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
// returns its base URL.
func ServeAPI(t testing.TB, r *region.Region, cfg region.Config) string {
	t.Helper()
	h, err := httpapi.New(r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
