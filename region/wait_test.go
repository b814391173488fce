package region

import (
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/internal/testutil"
)

// eventually and waitFor are testutil.Eventually under the names the
// internal tests of region already use.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return testutil.Eventually(t, within, what, cond)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, d, what, cond)
}
