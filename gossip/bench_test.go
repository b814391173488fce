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
func BenchmarkBorrowHold(b *testing.B) { benchBorrowHold(b, nil) }

// BenchmarkBorrowHoldSigned is BenchmarkBorrowHold in a signed cluster.
func BenchmarkBorrowHoldSigned(b *testing.B) { benchBorrowHold(b, newTestKeys(b, "eu", "us")) }

func benchBorrowHold(b *testing.B, keys *testKeys) {
	tc := newTestClusterKeys(b, keys, "eu", "us")
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
func BenchmarkReplication(b *testing.B) { benchReplication(b, nil) }

// BenchmarkReplicationSigned is BenchmarkReplication in a signed cluster.
func BenchmarkReplicationSigned(b *testing.B) { benchReplication(b, newTestKeys(b, "eu", "us")) }

func benchReplication(b *testing.B, keys *testKeys) {
	tc := newTestClusterKeys(b, keys, "eu", "us")
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

// benchRows is a typical coalesced row delta: n rows of one region.
func benchRows(b *testing.B, n int) []byte {
	m := escrow.Message{Type: escrow.MsgRows, From: "us", Seq: uint64(n) + 1, PrevSeq: 1}
	for i := 0; i < n; i++ {
		m.Rows = append(m.Rows, escrow.Row{SKU: fmt.Sprintf("SKU-%06d", i), Region: "us", Seq: uint64(i) + 2,
			Minted: 1000, Sold: 10, Sent: []escrow.Transfer{{To: "eu", Qty: 5}}, Reserved: 40, Released: 20})
	}
	data, err := escrow.EncodeMessage(nil, &m)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkSealOpen: the publisher's encode+sign and the receiver's
// verify+decode of one rows message, with and without signing (1 row: a
// single hold's delta; 64 rows: a coalesced burst).
func BenchmarkSealOpen(b *testing.B) {
	keys := newTestKeys(b, "eu", "us")
	us, eu := keys.ring(b, "us"), keys.ring(b, "eu")
	const subject = "holdfast.c.rows.us"
	for _, n := range []int{1, 64} {
		payload := benchRows(b, n)
		m, err := escrow.DecodeMessage(payload)
		if err != nil {
			b.Fatal(err)
		}
		for _, mode := range []struct {
			name     string
			from, to *Keyring
		}{{"unsigned", nil, nil}, {"signed", us, eu}} {
			b.Run(fmt.Sprintf("rows=%d/%s/encode+sign", n, mode.name), func(b *testing.B) {
				var buf, out []byte
				b.SetBytes(int64(len(payload)))
				for i := 0; i < b.N; i++ {
					buf, _ = escrow.EncodeMessage(buf[:0], &m)
					out = mode.from.Seal(out[:0], subject, buf, time.Now())
				}
			})
			sealed := mode.from.Seal(nil, subject, payload, time.Now())
			b.Run(fmt.Sprintf("rows=%d/%s/verify+decode", n, mode.name), func(b *testing.B) {
				b.SetBytes(int64(len(payload)))
				for i := 0; i < b.N; i++ {
					env, err := mode.to.Open(subject, sealed)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := escrow.DecodeMessage(env.Payload); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
