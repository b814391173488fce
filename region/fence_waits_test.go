package region

import (
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// TestProbationWaits: the probation's bounds as docs/operations.md gives
// them; in particular a negative fresh_probation_max waits for the peers
// forever (it used to end the probation at its minimum, unconfirmed).
func TestProbationWaits(t *testing.T) {
	for _, tc := range []struct {
		name             string
		cfg              Config
		minWait, maxWait time.Duration
		on               bool
	}{
		{"defaults", Config{NATSURL: "nats://x"}, 1500 * time.Millisecond, DefaultFreshProbationMax, true},
		{"no peers", Config{}, 0, 0, false},
		{"off", Config{NATSURL: "nats://x", FreshProbation: -1}, 0, 0, false},
		{"no digests", Config{NATSURL: "nats://x", Escrow: escrow.Config{DigestInterval: -1}}, 0, 0, false},
		{"max below min", Config{NATSURL: "nats://x", FreshProbation: 5 * time.Second, FreshProbationMax: time.Second},
			5 * time.Second, 5 * time.Second, true},
		{"wait forever", Config{NATSURL: "nats://x", FreshProbationMax: -1}, 1500 * time.Millisecond, -1, true},
		{"in-process, wait forever", Config{FreshProbation: 200 * time.Millisecond, FreshProbationMax: -time.Second},
			200 * time.Millisecond, -time.Second, true},
	} {
		minWait, maxWait, on := tc.cfg.probationWaits()
		if on != tc.on || minWait != tc.minWait || (maxWait > 0) != (tc.maxWait > 0) || (tc.maxWait > 0 && maxWait != tc.maxWait) {
			t.Errorf("%s: got min %v max %v on %v; want min %v max %v on %v", tc.name, minWait, maxWait, on,
				tc.minWait, tc.maxWait, tc.on)
		}
	}
}

// TestProbationUnconfirmed: a region whose store started empty and that
// hears from no peer proceeds at fresh_probation_max, and says so in
// holdfast_region_probation_unconfirmed (the residual risk the alert
// HoldfastProbationUnconfirmed pages on).
func TestProbationUnconfirmed(t *testing.T) {
	r := openMem(t, newMemStorage(), func(c *Config) {
		c.NATSURL = "nats://127.0.0.1:1" // has peers, none of which is ever heard
		c.FreshProbation, c.FreshProbationMax = 20*time.Millisecond, 100*time.Millisecond
		c.TickInterval = 5 * time.Millisecond
	})
	if !r.fence.probation.Load() {
		t.Fatal("an empty store with peers is not on probation")
	}
	if r.fence.unconfirmed.Load() {
		t.Fatal("unconfirmed before the probation ended")
	}
	eventually(t, 10*time.Second, "the probation to end at its maximum", func() bool { return !r.fence.probation.Load() })
	if !r.fence.unconfirmed.Load() {
		t.Fatal("a probation ended without any peer is not reported unconfirmed")
	}
}
