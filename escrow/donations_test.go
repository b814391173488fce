package escrow

import (
	"fmt"
	"testing"
)

// TestDonationTable: answers are kept in two generations that turn over by
// count (MaxDonations/2) or by time (donationHorizon); what is forgotten is
// answered with nothing when a copy comes, per asker, and never refuses a
// fresh request.
func TestDonationTable(t *testing.T) {
	tb := newDonationTable(4) // two generations of 2
	now := t0
	tb.put(now, "us", 10, 3)
	tb.put(now, "ap", 10, 1)
	if g, ok := tb.get("us", 10); !ok || g != 3 {
		t.Fatalf("us 10: %d %v, want 3 true", g, ok)
	}
	if _, ok := tb.get("us", 11); ok {
		t.Fatal("us 11 known before it came")
	}
	tb.put(now, "us", 11, 2) // current full: rotates, nothing forgotten yet
	tb.put(now, "us", 12, 0)
	if tb.forgotten != 0 || tb.len() != 4 {
		t.Fatalf("forgotten %d, kept %d; want 0, 4", tb.forgotten, tb.len())
	}
	tb.put(now, "ap", 11, 5) // rotates again: us 10 and ap 10 are forgotten
	if tb.forgotten != 2 || tb.len() != 3 {
		t.Fatalf("forgotten %d, kept %d; want 2, 3", tb.forgotten, tb.len())
	}
	for _, c := range []struct {
		from string
		id   uint64
		want uint64
		ok   bool
	}{
		{"us", 10, 0, true},  // forgotten: answered with nothing
		{"us", 9, 0, true},   // below us's watermark: may be a forgotten one
		{"us", 11, 2, true},  // still remembered
		{"ap", 10, 0, true},  // forgotten
		{"ap", 11, 5, true},  // remembered
		{"us", 13, 0, false}, // fresh: above the watermark
		{"sa", 1, 0, false},  // an asker nothing was forgotten of
	} {
		if g, ok := tb.get(c.from, c.id); g != c.want || ok != c.ok {
			t.Errorf("%s %d: %d %v, want %d %v", c.from, c.id, g, ok, c.want, c.ok)
		}
	}
	if tb.refused != 3 {
		t.Errorf("%d requests refused as copies of forgotten ones, want 3", tb.refused)
	}
	// By time: a generation older than the horizon turns over at the next
	// answer even when it is not full, and the one before is forgotten.
	tb = newDonationTable(1000)
	tb.put(now, "us", 1, 1)
	tb.put(now.Add(donationHorizon), "us", 2, 1)
	if tb.forgotten != 0 || tb.len() != 2 {
		t.Fatalf("after one horizon: forgotten %d, kept %d; want 0, 2", tb.forgotten, tb.len())
	}
	tb.put(now.Add(2*donationHorizon), "us", 3, 1)
	if tb.forgotten != 1 || tb.len() != 2 {
		t.Fatalf("after two horizons: forgotten %d, kept %d; want 1, 2", tb.forgotten, tb.len())
	}
	// An answer is kept at least one horizon when the count bound is not
	// reached: us 2 came a horizon ago and is still there.
	if g, ok := tb.get("us", 2); !ok || g != 1 {
		t.Fatalf("us 2 after one horizon: %d %v", g, ok)
	}
	// Askers beyond maxDonors are answered with nothing, never remembered.
	tb = newDonationTable(1000)
	for i := 0; i < maxDonors; i++ {
		tb.put(now, fmt.Sprintf("r%d", i), 1, 1)
	}
	tb.put(now, "onetoomany", 1, 1)
	if g, ok := tb.get("onetoomany", 2); !ok || g != 0 || len(tb.names) != maxDonors {
		t.Fatalf("asker beyond maxDonors: %d %v, %d names", g, ok, len(tb.names))
	}
}

func TestMaxDonationsValidated(t *testing.T) {
	for _, c := range []struct {
		max int
		ok  bool
	}{{0, true}, {2, true}, {100_000, true}, {-1, false}, {1, false}, {maxMaxDonations + 1, false}} {
		cfg := Config{Region: "eu", MaxDonations: c.max}
		if err := cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("MaxDonations %d: %v, want ok=%v", c.max, err, c.ok)
		}
	}
	n, err := NewNode(Config{Region: "eu"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n.cfg.MaxDonations != 100_000 || n.donations.perGen != 50_000 {
		t.Fatalf("default: MaxDonations %d, %d per generation", n.cfg.MaxDonations, n.donations.perGen)
	}
}
