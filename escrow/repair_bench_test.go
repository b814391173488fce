package escrow

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkRepairSnapshot: the whole snapshot of a region of 1M SKUs to a
// wiped peer, chunk by chunk, through both nodes (answer, encode, decode,
// merge). Reports the encoded bytes per snapshot and per row. Run with
//
//	go test ./escrow -run '^$' -bench RepairSnapshot -benchtime 1x
func BenchmarkRepairSnapshot(b *testing.B) {
	const skus = 1_000_000
	eu, err := NewNode(Config{Region: "eu", DigestInterval: -1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < skus; i++ {
		if err := eu.Step(Input{Now: t0, Cmd: &Command{Kind: CmdRestock, ReqID: uint64(i + 1), SKU: fmt.Sprintf("sku-%07d", i), Qty: 10}}); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			eu.Ready()
			eu.Advance()
		}
	}
	eu.Ready()
	eu.Advance()
	b.ResetTimer()
	var bytes, chunks int
	for it := 0; it < b.N; it++ {
		us, err := NewNode(Config{Region: "us", DigestInterval: -1}, nil)
		if err != nil {
			b.Fatal(err)
		}
		var buf []byte
		seen := uint64(0)
		for {
			req := Message{Type: MsgRepairReq, From: "us", To: "eu", Seq: seen}
			if err := eu.Step(Input{Now: t0, Msg: &req}); err != nil {
				b.Fatal(err)
			}
			rd := eu.Ready()
			eu.Advance()
			chunks++
			for i := range rd.Send {
				m := &rd.Send[i]
				if m.Type != MsgRows || m.To != "us" {
					continue
				}
				if buf, err = EncodeMessage(buf[:0], m); err != nil {
					b.Fatal(err)
				}
				bytes += len(buf)
				dm, err := DecodeMessage(buf)
				if err != nil {
					b.Fatal(err)
				}
				if err := us.Step(Input{Now: t0.Add(time.Millisecond), Msg: &dm}); err != nil {
					b.Fatal(err)
				}
				us.Ready()
				us.Advance()
			}
			s := us.peers["eu"].seen
			if s == eu.Seq() {
				break
			}
			if s == seen {
				b.Fatalf("no progress at seq %d", s)
			}
			seen = s
		}
	}
	b.ReportMetric(float64(bytes)/float64(b.N), "bytes/snapshot")
	b.ReportMetric(float64(bytes)/float64(b.N*skus), "bytes/row")
	b.ReportMetric(float64(chunks)/float64(b.N), "chunks/snapshot")
}
