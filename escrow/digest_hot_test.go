package escrow

import (
	"fmt"
	"testing"
	"time"
)

// digestNode is a node of idle SKUs restocked in batches, its clock at now.
func digestNode(t *testing.T, cfg Config, skus int) (*Node, time.Time) {
	t.Helper()
	n, err := NewNode(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	for i := 0; i < skus; i++ {
		if err := n.Step(Input{Now: now, Cmd: &Command{Kind: CmdRestock, ReqID: uint64(i + 1), SKU: fmt.Sprintf("sku-%07d", i), Qty: 100}}); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 999 || i == skus-1 {
			advanced(n)
		}
	}
	return n, now
}

// digestsOf steps the clock to now and returns the digests it sent.
func digestsOf(t *testing.T, n *Node, now time.Time, cmd *Command) []Message {
	t.Helper()
	if err := n.Step(Input{Now: now, Cmd: cmd}); err != nil {
		t.Fatal(err)
	}
	rd := advanced(n)
	if cmd != nil && (len(rd.Reply) != 1 || rd.Reply[0].Err != nil) {
		t.Fatalf("%s: %+v", cmd.Kind, rd.Reply)
	}
	var out []Message
	for _, m := range rd.Send {
		if m.Type == MsgDigest {
			out = append(out, m)
		}
	}
	return out
}

func digestHas(m *Message, sku string) (SKUDigest, bool) {
	for _, d := range m.Digest {
		if d.SKU == sku {
			return d, true
		}
	}
	return SKUDigest{}, false
}

// TestDigestActiveSKUAmongIdle: with 200k idle SKUs just imported (all of
// them changed) and digests of 1,024 SKUs, a SKU shoppers hold is in every
// digest from the first after its hold, with its current availability; a
// round robin would show it once every ~200 intervals.
func TestDigestActiveSKUAmongIdle(t *testing.T) {
	const skus = 200_000
	cfg := Config{Region: "eu", DigestInterval: time.Second, MaxDigestSKUs: 1024}
	n, now := digestNode(t, cfg, skus)
	active := fmt.Sprintf("sku-%07d", 123_457)
	st0 := n.Stats()
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		now = now.Add(time.Second)
		ds := digestsOf(t, n, now, &Command{Kind: CmdHold, ReqID: uint64(skus + i + 1), TTL: time.Hour,
			Lines: []Line{{SKU: active, Qty: 1}}})
		// The hold is applied before the tick that builds the digest.
		if len(ds) != 1 {
			t.Fatalf("interval %d: %d digests", i, len(ds))
		}
		m := &ds[0]
		if len(m.Digest) > cfg.MaxDigestSKUs {
			t.Fatalf("interval %d: digest of %d SKUs, over %d", i, len(m.Digest), cfg.MaxDigestSKUs)
		}
		d, ok := digestHas(m, active)
		if !ok {
			t.Fatalf("interval %d: the active SKU is not in the digest (%d SKUs)", i, len(m.Digest))
		}
		if want := n.Available(active); d.Available != want || d.Held != uint64(i+1) {
			t.Fatalf("interval %d: digest says available %d held %d, node has %d and %d holds", i, d.Available, d.Held, want, i+1)
		}
		for _, d := range m.Digest {
			seen[d.SKU] = true
		}
	}
	// The rest of each digest went to the imported (changed) SKUs.
	if len(seen) < 20*(cfg.MaxDigestSKUs-1) {
		t.Fatalf("20 digests carried %d distinct SKUs, want about %d", len(seen), 20*(cfg.MaxDigestSKUs-1))
	}
	st := n.Stats()
	if d, k := st.Digests-st0.Digests, st.DigestSKUs-st0.DigestSKUs; d != 20 || k != 20*uint64(cfg.MaxDigestSKUs) {
		t.Fatalf("stats: %d digests of %d SKUs", d, k)
	}
	t.Logf("%d digests, %d entries, %d bytes of entries", st.Digests-st0.Digests, st.DigestSKUs-st0.DigestSKUs, st.DigestBytes-st0.DigestBytes)
	// The queues stay bounded, however large the import.
	if len(n.hotChanged) > maxHotFactor*cfg.MaxDigestSKUs || len(n.hotDemand) > maxHotFactor*cfg.MaxDigestSKUs {
		t.Fatalf("queues of %d and %d SKUs", len(n.hotChanged), len(n.hotDemand))
	}
}

// TestDigestColdSKUsStillSeen: once nothing changes, the round robin shows
// every SKU with a row, and a SKU that was in demand leaves the digests
// once its demand has decayed.
func TestDigestColdSKUsStillSeen(t *testing.T) {
	const skus = 5_000
	cfg := Config{Region: "eu", DigestInterval: time.Second, MaxDigestSKUs: 100, DemandTau: 10 * time.Second}
	n, now := digestNode(t, cfg, skus)
	now = now.Add(time.Second)
	digestsOf(t, n, now, &Command{Kind: CmdHold, ReqID: 1 << 40, TTL: time.Hour, Lines: []Line{{SKU: "sku-0000007", Qty: 1}}})
	seen := map[string]int{}
	for i := 0; i < 2*skus/cfg.MaxDigestSKUs+maxHotFactor; i++ {
		now = now.Add(time.Second)
		for _, m := range digestsOf(t, n, now, nil) {
			if len(m.Digest) > cfg.MaxDigestSKUs {
				t.Fatalf("digest of %d SKUs", len(m.Digest))
			}
			for _, d := range m.Digest {
				seen[d.SKU]++
			}
		}
	}
	if len(seen) != skus {
		t.Fatalf("%d of %d SKUs seen in %d digests", len(seen), skus, n.Stats().Digests)
	}
	// One unit over tau=10s stays above hotDemand for ~23s, then only the
	// round robin carries it: a handful of times, not every interval.
	if c := seen["sku-0000007"]; c > 40 {
		t.Fatalf("a SKU idle for minutes was in %d digests", c)
	}
}
