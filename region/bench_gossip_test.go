package region_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/internal/testutil"
)

// BenchmarkBorrowHoldLatency: every hold at us needs one unit borrowed from
// eu over loopback NATS (us owns nothing; eu donates exactly the shortfall),
// with fsync at both ends. Reports p50/p99 hold latency.
func BenchmarkBorrowHoldLatency(b *testing.B) {
	w := newMRWorld(b, "eu", "us")
	w.mustDo("eu", restock("B", escrow.MaxQty))
	w.waitKnows("us", "eu", "B", escrow.MaxQty)
	lat := make([]time.Duration, 0, b.N)
	refused := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		r, err := w.do("us", hold("B", 1))
		lat = append(lat, time.Since(start))
		switch {
		case err != nil:
			b.Fatalf("hold %d: %v", i, err)
		case r.Err != nil && r.Err.Code == escrow.CodeInsufficientStock:
			refused++ // the borrow missed its deadline (50 ms)
		case r.Err != nil:
			b.Fatalf("hold %d: %v", i, r.Err)
		}
	}
	b.StopTimer()
	var borrowed uint64
	w.inspect("us", func(n *escrow.Node) { borrowed = n.Stats().BorrowUnitsIn })
	// A borrow answered after its deadline still brings its unit (inside
	// the donor's row) without being counted as answered; the next hold
	// uses that unit without borrowing.
	if granted := b.N - refused; borrowed+uint64(refused) < uint64(granted) {
		b.Fatalf("%d holds granted but only %d units borrowed", granted, borrowed)
	}
	b.ReportMetric(float64(refused)/float64(b.N), "missed-deadline/op")
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkReplicationThroughput: eu changes b.N rows (restocks of distinct
// SKUs from 32 writers, so commits are grouped) and the clock stops when us
// has applied every change. Fsync is off: this measures the transport and
// the apply loops, not the disk.
func BenchmarkReplicationThroughput(b *testing.B) {
	w := newMRWorldOpts(b, true, "eu", "us")
	w.mustDo("eu", restock("warmup", 1))
	w.waitKnows("us", "eu", "warmup", 1)
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if r, err := w.do("eu", restock(fmt.Sprintf("R%07d", i), 1)); err != nil || r.Err != nil {
					b.Errorf("restock: %v %v", err, r.Err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var seq uint64
	w.inspect("eu", func(n *escrow.Node) { seq = n.Seq() })
	testutil.WaitFor(b, time.Minute, func() bool {
		var seen uint64
		w.inspect("us", func(n *escrow.Node) { seen = n.PeerSeq("eu") })
		return seen >= seq
	}, func() string { return "us did not catch up" })
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "deltas/s")
}
