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
		rd := advanced(n)
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
	maxBytesPerIdleSKU   = 330 // measured 314 B (338 B with the 280-byte skuState, 606 B with a map of rows per SKU)
	maxBytesPerHold      = 260 // measured 195 B (205 B when the expiry heap grew by append; 351-365 B when the node kept a whole Hold per hold)
	maxBytesPerKeyedHold = 420 // measured 331 B (339 B with the heap grown by append; 524 B before the compact hold and key records)
)

// TestMemoryDonationsBounded: the donation table (donations.go) keeps at
// most MaxDonations answers however many borrow requests a donor answers,
// its memory stays flat once both generations have filled, a copy of a
// remembered request gets the same answer, and a copy of a forgotten one
// gets nothing (it drains nothing twice).
func TestMemoryDonationsBounded(t *testing.T) {
	const maxDonations, requests = 10_000, 200_000
	n, err := NewNode(Config{Region: "eu", DigestInterval: -1, MaxDonations: maxDonations}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	step := func(in Input) Ready {
		in.Now = now
		if err := n.Step(in); err != nil {
			t.Fatal(err)
		}
		rd := advanced(n)
		return rd
	}
	step(Input{Cmd: &Command{Kind: CmdRestock, SKU: "A", Qty: MaxQty}})
	from := []string{"us", "ap", "sa"}
	// Ids follow the clock, as nextBorrowID's do; 10 ms apart, so that
	// 200,000 requests span 33 min: generations turn over by count (5,000
	// answers) and, at the end, by time too.
	ask := func(i int) Message {
		return Message{Type: MsgBorrowReq, From: from[i%3], To: "eu", ID: uint64(t0.UnixNano()) + uint64(i),
			SKU: "A", Qty: 1, Urgent: true}
	}
	answer := func(m Message) uint64 {
		t.Helper()
		rd := step(Input{Msg: &m})
		for _, o := range rd.Send {
			if o.Type == MsgBorrowResp && o.ID == m.ID {
				return o.Qty
			}
		}
		t.Fatalf("no answer to borrow %d", m.ID)
		return 0
	}
	heap0 := liveHeap()
	var heapAt [2]uint64
	for i := 0; i < requests; i++ {
		now = now.Add(10 * time.Millisecond)
		if got := answer(ask(i)); got != 1 {
			t.Fatalf("request %d: given %d, want 1", i, got)
		}
		if l := n.donations.len(); l > maxDonations {
			t.Fatalf("after %d requests: %d answers remembered, over MaxDonations %d", i+1, l, maxDonations)
		}
		switch i + 1 {
		case requests / 10:
			heapAt[0] = liveHeap()
		case requests:
			heapAt[1] = liveHeap()
		}
	}
	donated := n.Stats().DonatedUnits
	if donated != requests {
		t.Fatalf("donated %d units for %d requests", donated, requests)
	}
	// A copy of a recent request: the same answer, nothing more given.
	if got := answer(ask(requests - 1)); got != 1 || n.Stats().DonatedUnits != donated {
		t.Errorf("copy of a remembered request: given %d, donated %d (was %d)", got, n.Stats().DonatedUnits, donated)
	}
	// A copy of a forgotten one (the first request, minutes late):
	// nothing, and it is not remembered.
	if n.donations.forgotten == 0 {
		t.Fatal("nothing forgotten: the test does not reach the bound")
	}
	before := n.donations.len()
	if got := answer(ask(0)); got != 0 || n.Stats().DonatedUnits != donated || n.donations.len() != before ||
		n.Stats().DonationCopiesRefused != 1 {
		t.Errorf("copy of a forgotten request: given %d, donated %d (was %d), %d remembered (was %d), %d refused",
			got, n.Stats().DonatedUnits, donated, n.donations.len(), before, n.Stats().DonationCopiesRefused)
	}
	// A fresh request from an asker whose answers were forgotten is
	// answered as usual.
	if got := answer(ask(requests)); got != 1 {
		t.Errorf("fresh request after forgetting: given %d, want 1", got)
	}
	growth := int64(heapAt[1]) - int64(heapAt[0])
	perAnswer := float64(int64(heapAt[1])-int64(heap0)) / maxDonations
	t.Logf("%d requests, MaxDonations %d: heap +%.0f kB after %d, +%.0f kB after %d (%+d B over the last %d): %.0f B per answer remembered",
		requests, maxDonations, float64(int64(heapAt[0])-int64(heap0))/1024, requests/10,
		float64(int64(heapAt[1])-int64(heap0))/1024, requests, growth, requests*9/10, perAnswer)
	if growth > maxDonationsGrowth {
		t.Errorf("heap grew by %d B over the last %d requests, over %d B", growth, requests*9/10, maxDonationsGrowth)
	}
	if perAnswer > maxBytesPerDonation {
		t.Errorf("%.0f B per answer remembered, over the bound of %d", perAnswer, maxBytesPerDonation)
	}
}

const (
	// maxDonationsGrowth: what the heap may grow by over the last 180,000
	// requests, the table full (the rest of the node is flat: one SKU, no
	// holds). Measured: a few hundred bytes.
	maxDonationsGrowth = 64 << 10
	// maxBytesPerDonation bounds the table's heap per answer it may keep
	// (MaxDonations), both generations full. Measured: 44 B.
	maxBytesPerDonation = 64
)
