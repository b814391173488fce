package gossip

import (
	"context"
	"fmt"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"slices"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// BenchmarkBorrowHold: every hold at us borrows its unit from eu over
// loopback NATS; in-memory nodes (no fsync), so this is the transport's
// share of the hold latency. Reports p50/p99.
func BenchmarkBorrowHold(b *testing.B) {
	tc := newTestCluster(b, "eu", "us")
	tc.do("eu", escrow.Command{Kind: escrow.CmdRestock, SKU: "B", Qty: escrow.MaxQty})
	tc.waitKnows("us", "eu", "B", 10*time.Second)
	lat := make([]time.Duration, 0, b.N)
	missed := 0
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		r, err := tc.nodes["us"].Do(ctx, holdCmd("B", 1))
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if r.Err != nil {
			missed++
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(missed)/float64(b.N), "missed-deadline/op")
}

// BenchmarkReplication: eu changes b.N rows; the clock stops when us has
// applied them all (its contiguous sequence of eu reaches eu's).
func BenchmarkReplication(b *testing.B) {
	tc := newTestCluster(b, "eu", "us")
	eu := tc.nodes["eu"]
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := eu.Execute(ctx, escrow.Command{Kind: escrow.CmdRestock, SKU: fmt.Sprintf("R%07d", i), Qty: 1}); err != nil {
			b.Fatal(err)
		}
	}
	var seq uint64
	eu.inspect(func(n *escrow.Node) { seq = n.Seq() })
	testutil.WaitFor(b, time.Minute, func() bool {
		var seen uint64
		tc.nodes["us"].inspect(func(n *escrow.Node) { seen = n.PeerSeq("eu") })
		return seen >= seq
	}, func() string { return "us did not catch up" })
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "deltas/s")
}
