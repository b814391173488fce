package region

import (
	"os"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// Hooks for this package's external tests (package region_test). Tests
// that drive the runtime over the HTTP API import httpapi, which imports
// region, so they cannot be internal tests; these names give them the
// in-memory storage, the fake transport and the few internals they check.

// HOLDFAST_TEST_WAL=pebble runs every store this package's tests open
// without a WAL mode of their own on pebble's write-ahead log instead of
// the store's own (store_wal.go, the default): the crash and failing-disk
// tests then check it. HOLDFAST_TEST_INLINE=0 turns the inline commit off
// in every region they open (inline_commit.go).
func init() {
	if m := os.Getenv("HOLDFAST_TEST_WAL"); m != "" {
		if err := ValidWAL(m); err != nil {
			panic("HOLDFAST_TEST_WAL: " + err.Error())
		}
		testDefaultWAL = m
	}
	testNoInlineCommit = os.Getenv("HOLDFAST_TEST_INLINE") == "0"
	testIngestCopy = true
}

type MemStorage = memStorage

func NewMemStorage() *MemStorage { return newMemStorage() }

func (m *memStorage) Row(sku, region string) escrow.Row { return m.row(sku, region) }
func (m *memStorage) SetFailApply(n int)                { m.setFailApply(n) }

// SetDelay makes every later Apply take d (a slow fsync).
func (m *memStorage) SetDelay(d time.Duration) {
	m.mu.Lock()
	m.delay = d
	m.mu.Unlock()
}

// OpenMem opens region "eu" on st, closed when the test ends.
func OpenMem(t *testing.T, st *MemStorage, mod func(c *Config)) *Region { return openMem(t, st, mod) }

func MustDo(t *testing.T, r *Region, cmd escrow.Command) escrow.Reply { return mustDo(t, r, cmd) }
func Restock(t *testing.T, r *Region, sku string, qty uint64)         { restock(t, r, sku, qty) }

// QueueLen is the number of client requests waiting for the apply loop.
func QueueLen(r *Region) int { return len(r.queue) }

// NewFakeTransport is a Transport whose Forward calls forward.
func NewFakeTransport(forward func(owner string, cmd escrow.Command) (escrow.Reply, error)) Transport {
	return &fakeTransport{forward: forward}
}

// OpenHomed opens eu with tr attached and the home of A (us) in force.
func OpenHomed(t *testing.T, tr Transport) *Region { return openHomed(t, tr) }

// RoutedOKCount is holdfast_routed_holds_total{result="ok"}.
func RoutedOKCount(r *Region) float64 { return routedCount(r, routedOK) }

const HomeHoldID = homeHoldID
