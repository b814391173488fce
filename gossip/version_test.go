package gossip

import (
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/internal/testutil"
)

// TestMixedVersionCluster runs a cluster in the middle of a rolling
// upgrade: eu and ap speak wire version 2, us is pinned to version 1 and
// reads only version 1, as the previous release does. Holds, borrows in
// both directions of the version gap, replication and forwarded commands
// all work; us refuses the version-2 digests (counted, reason "version")
// and reads their version-1 twins.
func TestMixedVersionCluster(t *testing.T) {
	tc := newTestCluster(t)
	tc.wire = map[string]int{"us": 1}
	for _, r := range []string{"eu", "us", "ap"} {
		tc.add(r, escrow.Config{Region: r, DigestInterval: 100 * time.Millisecond, RepairTimeout: 200 * time.Millisecond})
	}
	speaks := func(from, to string, want byte) {
		t.Helper()
		testutil.WaitFor(t, 5*time.Second, func() bool { return tc.nodes[from].tr().Speaks(to) == want },
			func() string {
				return "" + from + " writes version " + string('0'+tc.nodes[from].tr().Speaks(to)) + " to " + to + ", want " + string('0'+want)
			})
	}
	speaks("eu", "ap", escrow.WireVersion)
	speaks("ap", "eu", escrow.WireVersion)
	speaks("eu", "us", 1)
	speaks("ap", "us", 1)
	speaks("us", "eu", 1)

	if r := tc.do("eu", escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 2}); r.Err != nil {
		t.Fatal(r.Err)
	}
	tc.waitKnows("us", "eu", "A", 5*time.Second)
	tc.waitKnows("ap", "eu", "A", 5*time.Second)
	// Borrows: us (old) from eu (new), ap (new) from eu (new).
	hu := tc.do("us", holdCmd("A", 1))
	if hu.Err != nil || hu.Hold == nil {
		t.Fatalf("hold at us: %+v", hu.Err)
	}
	ha := tc.do("ap", holdCmd("A", 1))
	if ha.Err != nil || ha.Hold == nil {
		t.Fatalf("hold at ap: %+v", ha.Err)
	}
	if r := tc.do("eu", holdCmd("A", 1)); r.Err == nil || r.Err.Code != escrow.CodeInsufficientStock {
		t.Fatalf("third hold of two units: %+v", r)
	}
	// The old region lends to a new one: us gets stock, ap borrows it.
	tc.do("us", escrow.Command{Kind: escrow.CmdRestock, SKU: "B", Qty: 1})
	tc.waitKnows("ap", "us", "B", 5*time.Second)
	if r := tc.do("ap", holdCmd("B", 1)); r.Err != nil {
		t.Fatalf("ap borrowing from us: %+v", r.Err)
	}
	// Forwarded commands across the gap, both ways.
	if c := tc.do("ap", escrow.Command{Kind: escrow.CmdConfirm, HoldID: hu.Hold.ID}); c.Err != nil || c.Hold.State != escrow.Confirmed {
		t.Fatalf("confirm of us's hold from ap: %+v", c.Err)
	}
	if c := tc.do("us", escrow.Command{Kind: escrow.CmdRelease, HoldID: ha.Hold.ID}); c.Err != nil || c.Hold.State != escrow.Released {
		t.Fatalf("release of ap's hold from us: %+v", c.Err)
	}
	for _, sku := range []string{"A", "B"} {
		testutil.WaitFor(t, 5*time.Second, func() bool { ok, _ := tc.converged(sku); return ok },
			func() string { _, why := tc.converged(sku); return why })
	}
	// Version 2 was on the wire, and only the old region refused it.
	eu := tc.nodes["eu"].tr().m
	if v2 := counterValue(eu.wireOut.WithLabelValues("2")); v2 == 0 {
		t.Fatal("eu never wrote version 2")
	}
	if v1 := counterValue(eu.wireOut.WithLabelValues("1")); v1 == 0 {
		t.Fatal("eu never wrote version 1")
	}
	if n := counterValue(tc.nodes["us"].tr().m.decodeErrs.WithLabelValues("version")); n == 0 {
		t.Fatal("us never saw (and refused) a version-2 message")
	}
	for _, r := range []string{"eu", "ap"} {
		if n := counterValue(tc.nodes[r].tr().m.decodeErrs.WithLabelValues("version")); n != 0 {
			t.Fatalf("%s refused %v messages for their version", r, n)
		}
	}
}

// TestMixedVersionRules checks the version bookkeeping: a member not heard
// from holds broadcasts at version 1, a version-2 digest's twin is not
// delivered twice, and a region rolled back to version 1 is written
// version 1 again from its second digest on.
func TestMixedVersionRules(t *testing.T) {
	w := newWireVersions(2, []string{"us", "ap"}, nil)
	if w.forAll() != 1 || w.forPeer("us") != 1 {
		t.Fatal("unknown peers must be written version 1")
	}
	dg := func(from string, speaks byte) *escrow.Message {
		return &escrow.Message{Type: escrow.MsgDigest, From: from, Speaks: speaks}
	}
	if !w.observe(dg("us", 2)) || w.forPeer("us") != 2 || w.forAll() != 1 {
		t.Fatalf("after us speaks 2: peer %d all %d (ap unknown)", w.forPeer("us"), w.forAll())
	}
	if w.observe(dg("us", 0)) {
		t.Fatal("the version-1 twin of a digest was delivered again")
	}
	// A version-1 digest with other content is no twin: delivered, and us
	// is written version 1 until it speaks 2 again.
	w.observe(dg("us", 2))
	other := dg("us", 0)
	other.Seq = 9
	if !w.observe(other) || w.forPeer("us") != 1 {
		t.Fatalf("a different version-1 digest: peer at %d", w.forPeer("us"))
	}
	w.observe(&escrow.Message{Type: escrow.MsgRows, From: "us", Speaks: 2}) // any version-2 message
	if w.forPeer("us") != 2 {
		t.Fatal("a version-2 message did not restore version 2")
	}
	if !w.observe(dg("ap", 2)) || w.forAll() != 2 {
		t.Fatalf("every member speaks 2, broadcast in %d", w.forAll())
	}
	// us rolls back: its digests are version 1 only.
	if !w.observe(dg("us", 2)) {
		t.Fatal("v2 digest dropped")
	}
	w.observe(dg("us", 0)) // taken for a twin
	if !w.observe(dg("us", 0)) || w.forPeer("us") != 1 || w.forAll() != 1 {
		t.Fatalf("after a rollback: peer %d all %d, want 1 1", w.forPeer("us"), w.forAll())
	}
	// A region pinned to version 1 never writes 2.
	old := newWireVersions(1, nil, nil)
	old.observe(dg("eu", 2))
	if old.forPeer("eu") != 1 || old.forAll() != 1 {
		t.Fatal("a version-1 region wrote version 2")
	}
}

// TestMixedVersionLocations: eu and ap speak wire version 3, us is pinned
// to version 2 (it reads no location keys). A location sold by eu and ap
// replicates between them and ap borrows its units from eu, while us keeps
// working on default-location SKUs and is never sent a location key it
// could read: it refuses the version-3 broadcasts (reason "version") and
// reads their version-2 copies without the location rows.
func TestMixedVersionLocations(t *testing.T) {
	tc := newTestCluster(t)
	tc.wire = map[string]int{"us": 2}
	locs := []escrow.Location{{ID: "eu-paris", Owner: "eu", Sellers: []string{"eu", "ap"}}}
	for _, r := range []string{"eu", "us", "ap"} {
		tc.add(r, escrow.Config{Region: r, DigestInterval: 100 * time.Millisecond, RepairTimeout: 200 * time.Millisecond,
			Locations: locs})
	}
	testutil.WaitFor(t, 5*time.Second, func() bool {
		return tc.nodes["eu"].tr().Speaks("ap") == escrow.WireVersion && tc.nodes["eu"].tr().Speaks("us") == 2
	}, func() string { return "eu never learned ap speaks 3 and us 2" })
	paris := escrow.StockKey("A", "eu-paris")
	if r := tc.do("eu", escrow.Command{Kind: escrow.CmdRestock, SKU: paris, Qty: 2}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := tc.do("eu", escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 1}); r.Err != nil {
		t.Fatal(r.Err)
	}
	tc.waitKnows("ap", "eu", paris, 5*time.Second)
	tc.waitKnows("us", "eu", "A", 5*time.Second)
	h := tc.do("ap", escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 2}}, TTL: time.Minute,
		Locations: []escrow.LineLocations{{SKU: "A", Locations: []string{"eu-paris"}}}})
	if h.Err != nil || h.Hold == nil || h.Hold.Lines[0].SKU != paris {
		t.Fatalf("hold at ap of eu-paris units: %+v", h)
	}
	if r := tc.do("us", holdCmd("A", 1)); r.Err != nil {
		t.Fatalf("hold of a default-location SKU at us: %+v", r.Err)
	}
	if v := tc.nodes["us"].view(paris); len(v) != 0 {
		t.Fatalf("us learned rows of a location key: %v", v)
	}
	if n := counterValue(tc.nodes["eu"].tr().m.wireOut.WithLabelValues("3")); n == 0 {
		t.Fatal("eu never wrote version 3")
	}
	if n := counterValue(tc.nodes["us"].tr().m.decodeErrs.WithLabelValues("version")); n == 0 {
		t.Fatal("us never refused a version-3 message")
	}
	if n := counterValue(tc.nodes["ap"].tr().m.decodeErrs.WithLabelValues("version")); n != 0 {
		t.Fatalf("ap refused %v messages for their version", n)
	}
}
