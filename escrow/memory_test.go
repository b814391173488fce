package escrow

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// footprint restocks skus SKUs, then places holds holds of one unit over
// them (each with an idempotency key if keyed), and returns the live heap
// bytes per idle SKU and per live hold.
func footprint(t *testing.T, skus, holds int, keyed bool) (perSKU, perHold float64) {
	t.Helper()
	n, err := NewNode(Config{Region: "eu", DigestInterval: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	step := func(c *Command) Reply {
		if err := n.Step(Input{Now: now, Cmd: c}); err != nil {
			t.Fatal(err)
		}
		rd := n.Ready()
		n.Advance()
		if len(rd.Reply) != 1 || rd.Reply[0].Err != nil {
			t.Fatalf("%s: %+v", c.Kind, rd.Reply)
		}
		return rd.Reply[0]
	}
	before := liveHeap()
	for i := 0; i < skus; i++ {
		step(&Command{Kind: CmdRestock, SKU: fmt.Sprintf("sku-%07d", i), Qty: 1000})
	}
	mid := liveHeap()
	for i := 0; i < holds; i++ {
		now = now.Add(time.Microsecond)
		c := &Command{Kind: CmdHold, ReqID: uint64(i + 1), TTL: time.Hour,
			Lines: []Line{{SKU: fmt.Sprintf("sku-%07d", i%skus), Qty: 1}}}
		if keyed {
			c.IdemKey, c.IdemHash = fmt.Sprintf("cart-%010d", i), uint64(i)
		}
		step(c)
	}
	after := liveHeap()
	runtime.KeepAlive(n)
	return float64(mid-before) / float64(skus), float64(after-mid) / float64(holds)
}

// TestMemoryFootprint bounds the RAM an idle SKU and a live hold cost in
// the core: the catalogue is mostly cold, so an idle SKU must stay cheap.
func TestMemoryFootprint(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 100k SKUs and 50k holds")
	}
	const skus, holds = 100_000, 50_000
	perSKU, perHold := footprint(t, skus, holds, false)
	t.Logf("%d SKUs, %d holds: %.0f B per idle SKU, %.0f B per live hold", skus, holds, perSKU, perHold)
	_, perKeyed := footprint(t, skus, holds, true)
	t.Logf("%d SKUs, %d holds with idempotency keys: %.0f B per live hold and its key", skus, holds, perKeyed)
	if perKeyed > maxBytesPerKeyedHold {
		t.Errorf("%.0f B per live hold with its idempotency key, over the bound of %d", perKeyed, maxBytesPerKeyedHold)
	}
	if perSKU > maxBytesPerIdleSKU {
		t.Errorf("%.0f B per idle SKU, over the bound of %d", perSKU, maxBytesPerIdleSKU)
	}
	if perHold > maxBytesPerHold {
		t.Errorf("%.0f B per live hold, over the bound of %d", perHold, maxBytesPerHold)
	}
}

const (
	maxBytesPerIdleSKU   = 400 // measured 308 B (606 B with a map of rows per SKU)
	maxBytesPerHold      = 260 // measured 205 B (351-365 B when the node kept a whole Hold per hold)
	maxBytesPerKeyedHold = 420 // measured 339 B (524 B before the compact hold and key records)
)
