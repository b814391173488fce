package region

import (
	"testing"
	"time"
)

// The internal tests of package region cannot import internal/testutil:
// testutil imports gossip (for the embedded NATS server) and gossip imports
// region, which Go refuses as an import cycle in tests. eventually is
// therefore testutil.Eventually's twin (same arguments, same polling, same
// failure), kept here so that these tests wait the way every other package
// does.

// pollEvery is testutil's polling interval. Polling is how a test observes
// another goroutine's progress, never the synchronisation itself: every
// wait has a condition and a deadline.
const pollEvery = 5 * time.Millisecond

// eventually polls cond until it holds and returns how long that took; when
// within passes first the test fails with what as the reason.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(pollEvery)
	}
	return time.Since(start)
}

// waitFor is eventually under its former name, for http_test.go and
// routed_test.go until they move to package httpapi (and to testutil).
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	eventually(t, d, what, cond)
}
