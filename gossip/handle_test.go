package gossip

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/holdfast-io/holdfast/escrow"
)

type captureInbox struct {
	mu   sync.Mutex
	msgs []escrow.Message
}

func (c *captureInbox) Deliver(m escrow.Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
}

func (c *captureInbox) Execute(ctx context.Context, cmd escrow.Command) (escrow.Reply, error) {
	return escrow.Reply{Kind: cmd.Kind}, nil
}

func encode(t testing.TB, m escrow.Message) []byte {
	t.Helper()
	b, err := escrow.EncodeMessage(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func row(region, sku string, seq, minted uint64) escrow.Row {
	return escrow.Row{SKU: sku, Region: region, Seq: seq, Minted: minted}
}

func TestSubjects(t *testing.T) {
	cases := []struct {
		m    escrow.Message
		want string
	}{
		{escrow.Message{Type: escrow.MsgRows, From: "eu"}, "holdfast.c.rows.eu"},
		{escrow.Message{Type: escrow.MsgRows, From: "eu", To: "us"}, "holdfast.c.borrow.us.eu"},
		{escrow.Message{Type: escrow.MsgDigest, From: "eu"}, "holdfast.c.digest.eu"},
		{escrow.Message{Type: escrow.MsgBorrowReq, From: "eu", To: "ap"}, "holdfast.c.borrow.ap.eu"},
		{escrow.Message{Type: escrow.MsgBorrowResp, From: "ap", To: "eu"}, "holdfast.c.borrow.eu.ap"},
		{escrow.Message{Type: escrow.MsgRepairReq, From: "eu", To: "us"}, "holdfast.c.borrow.us.eu"},
		{escrow.Message{Type: escrow.MsgAdvice, From: "rebalancer"}, "holdfast.c.advice"},
	}
	for _, c := range cases {
		got, err := SubjectFor("c", &c.m)
		if err != nil || got != c.want {
			t.Errorf("SubjectFor(%s %s->%s) = %q, %v; want %q", c.m.Type, c.m.From, c.m.To, got, err, c.want)
		}
		if _, err := ParseSubject(got); err != nil {
			t.Errorf("ParseSubject(%q): %v", got, err)
		}
	}
	if _, err := SubjectFor("c", &escrow.Message{Type: escrow.MsgBorrowReq, From: "eu"}); err == nil {
		t.Error("borrow request without a recipient got a subject")
	}
	for _, bad := range []string{"", "x.c.rows.eu", "holdfast.c.rows", "holdfast.c.rows.EU", "holdfast.c.borrow.us",
		"holdfast.c.nope.eu", "holdfast.c.advice.x", "holdfast.c.rows.eu.x"} {
		if _, err := ParseSubject(bad); err == nil {
			t.Errorf("ParseSubject(%q) accepted", bad)
		}
	}
	if err := ValidCluster("prod-1"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", "a.b", "a*", "a>", "a b", strings.Repeat("x", 65)} {
		if ValidCluster(bad) == nil {
			t.Errorf("ValidCluster(%q) accepted", bad)
		}
	}
}

func TestHandleChecks(t *testing.T) {
	in := &captureInbox{}
	tr, err := newTransport(Config{URL: "nats://127.0.0.1:1", Cluster: "c", Region: "eu", AllowPeers: []string{"us", "ap"}, Logger: quietLog()}, in)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	good := encode(t, escrow.Message{Type: escrow.MsgRows, From: "us", Seq: 2, PrevSeq: 1, Rows: []escrow.Row{row("us", "A", 2, 5)}})
	future := append([]byte(nil), good...)
	future[2] = escrow.WireVersion + 1
	cases := []struct {
		name    string
		subject string
		data    []byte
		ok      bool
		metric  string // "decode:<reason>" or "reject:<reason>"
	}{
		{"rows", "holdfast.c.rows.us", good, true, ""},
		{"replayed rows", "holdfast.c.rows.us", good, false, "reject:replay"},
		{"rows of us on ap's subject", "holdfast.c.rows.ap", encode(t, escrow.Message{Type: escrow.MsgRows, From: "us", Seq: 3, PrevSeq: 2,
			Rows: []escrow.Row{row("us", "A", 3, 6)}}), false, "reject:subject"},
		{"row of another writer", "holdfast.c.rows.us", encode(t, escrow.Message{Type: escrow.MsgRows, From: "us", Seq: 4, PrevSeq: 3,
			Rows: []escrow.Row{row("ap", "A", 4, 7)}}), false, "reject:subject"},
		{"digest on rows subject", "holdfast.c.rows.us", encode(t, escrow.Message{Type: escrow.MsgDigest, From: "us", Seq: 4}), false, "reject:subject"},
		{"digest", "holdfast.c.digest.us", encode(t, escrow.Message{Type: escrow.MsgDigest, From: "us", Seq: 4}), true, ""},
		{"same digest again is not a replay", "holdfast.c.digest.us", encode(t, escrow.Message{Type: escrow.MsgDigest, From: "us", Seq: 4}), true, ""},
		{"borrow for us delivered to eu", "holdfast.c.borrow.eu.ap", encode(t, escrow.Message{Type: escrow.MsgBorrowReq, From: "ap", To: "us", ID: 1, SKU: "A", Qty: 1}), false, "reject:subject"},
		{"borrow with forged sender", "holdfast.c.borrow.eu.ap", encode(t, escrow.Message{Type: escrow.MsgBorrowReq, From: "us", To: "eu", ID: 1, SKU: "A", Qty: 1}), false, "reject:subject"},
		{"borrow", "holdfast.c.borrow.eu.ap", encode(t, escrow.Message{Type: escrow.MsgBorrowReq, From: "ap", To: "eu", ID: 1, SKU: "A", Qty: 1, Urgent: true}), true, ""},
		{"advice on directed subject", "holdfast.c.borrow.eu.ap", encode(t, escrow.Message{Type: escrow.MsgAdvice, From: "ap", To: "eu"}), false, "reject:type"},
		{"advice", "holdfast.c.advice", encode(t, escrow.Message{Type: escrow.MsgAdvice, From: "rebalancer", Epoch: 1}), true, ""},
		{"from self", "holdfast.c.rows.eu", encode(t, escrow.Message{Type: escrow.MsgRows, From: "eu", Seq: 1, Rows: []escrow.Row{row("eu", "A", 1, 1)}}), false, "reject:self"},
		{"not allowed", "holdfast.c.digest.xx", encode(t, escrow.Message{Type: escrow.MsgDigest, From: "xx", Seq: 4}), false, "reject:non_member"},
		{"other cluster", "holdfast.d.digest.us", encode(t, escrow.Message{Type: escrow.MsgDigest, From: "us", Seq: 5}), false, "reject:subject"},
		{"corrupt", "holdfast.c.rows.us", []byte("garbage that is not a message"), false, "decode:corrupt"},
		{"truncated", "holdfast.c.rows.us", good[:len(good)-3], false, "decode:truncated"},
		{"future version", "holdfast.c.rows.us", future, false, "decode:version"},
		{"oversized", "holdfast.c.rows.us", make([]byte, escrow.MaxMessageBytes+1), false, "decode:oversized"},
	}
	for _, c := range cases {
		before := map[string]float64{}
		for _, r := range []string{"replay", "subject", "type", "self", "non_member"} {
			before["reject:"+r] = counterValue(tr.m.rejected.WithLabelValues(r))
		}
		for _, r := range []string{"corrupt", "truncated", "version", "oversized"} {
			before["decode:"+r] = counterValue(tr.m.decodeErrs.WithLabelValues(r))
		}
		n := len(in.msgs)
		got := tr.handle(c.subject, c.data, now)
		if got != c.ok || (len(in.msgs) > n) != c.ok {
			t.Errorf("%s: delivered=%v (inbox %d→%d), want %v", c.name, got, n, len(in.msgs), c.ok)
		}
		if c.metric != "" {
			kind, reason, _ := strings.Cut(c.metric, ":")
			var v float64
			if kind == "reject" {
				v = counterValue(tr.m.rejected.WithLabelValues(reason))
			} else {
				v = counterValue(tr.m.decodeErrs.WithLabelValues(reason))
			}
			if v != before[c.metric]+1 {
				t.Errorf("%s: %s counter %v → %v, want +1", c.name, c.metric, before[c.metric], v)
			}
		}
	}
}

func TestMetricsRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := Config{URL: "nats://127.0.0.1:1", Cluster: "c", Region: "eu", Registerer: reg}
	tr, err := newTransport(cfg, &captureInbox{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Region = "us"
	tr2, err := newTransport(cfg, &captureInbox{})
	if err != nil {
		t.Fatalf("second region on one registry: %v", err)
	}
	tr.m.lag.noteDigest("us", 10, time.Now().Add(-2*time.Second))
	tr.m.lag.noteRows("us", 7)
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	if n := collectCount(tr.m.lag); n != 2 {
		t.Fatalf("lag series = %d, want 2", n)
	}
	tr.unregister()
	tr2.unregister()
}

func TestLagCollector(t *testing.T) {
	applied := map[string]uint64{"us": 0}
	c := newLagCollector("eu", func() map[string]uint64 { return applied })
	t0 := time.Unix(1000, 0)
	c.now = func() time.Time { return t0.Add(5 * time.Second) }
	c.noteDigest("us", 10, t0)
	c.noteDigest("us", 12, t0.Add(time.Second))
	c.noteDigest("us", 12, t0.Add(2*time.Second)) // same seq: not a new interval
	seq, secs := c.lagOf("us", 0, c.now())
	if seq != 12 || secs != 5 {
		t.Fatalf("lag = %d, %vs; want 12, 5s", seq, secs)
	}
	seq, secs = c.lagOf("us", 10, c.now())
	if seq != 2 || secs != 4 {
		t.Fatalf("lag after applying 10 = %d, %vs; want 2, 4s", seq, secs)
	}
	if seq, secs = c.lagOf("us", 12, c.now()); seq != 0 || secs != 0 {
		t.Fatalf("lag when caught up = %d, %vs", seq, secs)
	}
}

func TestCoalesce(t *testing.T) {
	tr, err := newTransport(Config{URL: "x", Cluster: "c", Region: "eu"}, &captureInbox{})
	if err != nil {
		t.Fatal(err)
	}
	m1 := escrow.Message{Type: escrow.MsgRows, From: "eu", PrevSeq: 0, Seq: 2, Rows: []escrow.Row{row("eu", "A", 1, 1), row("eu", "B", 2, 1)}}
	m2 := escrow.Message{Type: escrow.MsgRows, From: "eu", PrevSeq: 2, Seq: 3, Rows: []escrow.Row{row("eu", "A", 3, 2)}}
	dig := escrow.Message{Type: escrow.MsgDigest, From: "eu", Seq: 3}
	m3 := escrow.Message{Type: escrow.MsgRows, From: "eu", PrevSeq: 3, Seq: 4, Rows: []escrow.Row{row("eu", "C", 4, 1)}}
	gap := escrow.Message{Type: escrow.MsgRows, From: "eu", PrevSeq: 9, Seq: 10, Rows: []escrow.Row{row("eu", "D", 10, 1)}}
	repair := escrow.Message{Type: escrow.MsgRows, From: "eu", To: "us", PrevSeq: 10, Seq: 11, Rows: []escrow.Row{row("eu", "D", 11, 1)}}
	orig := m1.Rows[0]
	out := tr.coalesce([]outItem{{msg: m1}, {msg: m2}, {msg: dig}, {msg: m3}, {msg: gap}, {msg: repair}})
	if len(out) != 4 {
		t.Fatalf("coalesced into %d items, want 4: %+v", len(out), out)
	}
	a := out[0].msg
	if a.PrevSeq != 0 || a.Seq != 4 || len(a.Rows) != 3 {
		t.Fatalf("merged = prev %d seq %d rows %+v", a.PrevSeq, a.Seq, a.Rows)
	}
	for _, r := range a.Rows {
		if r.SKU == "A" && (r.Seq != 3 || r.Minted != 2) {
			t.Fatalf("row A not at its latest version: %+v", r)
		}
	}
	if !m1.Rows[0].Equal(&orig) {
		t.Fatal("coalesce changed the caller's rows")
	}
	if out[1].msg.Type != escrow.MsgDigest || out[2].msg.Seq != 10 || out[3].msg.To != "us" {
		t.Fatalf("order after merge: %+v", out)
	}
}

// TestSplitRowsChain checks that an oversized rows message is split into a
// chain that an escrow node accepts as contiguous.
func TestSplitRowsChain(t *testing.T) {
	var rows []escrow.Row
	for i := 0; i < 9; i++ {
		rows = append(rows, row("us", string(rune('A'+i)), uint64(9-i)+5, 1))
	}
	m := escrow.Message{Type: escrow.MsgRows, From: "us", PrevSeq: 5, Seq: 14, Rows: rows}
	a, b := splitRows(&m)
	if !a.More || b.More || a.PrevSeq != 5 || b.PrevSeq != a.Seq || b.Seq != 14 || len(a.Rows)+len(b.Rows) != 9 {
		t.Fatalf("split: %+v / %+v", a, b)
	}
	for _, r := range a.Rows {
		if r.Seq > a.Seq {
			t.Fatalf("first part holds row seq %d beyond its Seq %d", r.Seq, a.Seq)
		}
	}
	n, err := escrow.NewNode(escrow.Config{Region: "eu", DigestInterval: -1}, &escrow.State{PeerSeq: map[string]uint64{"us": 5}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, part := range []escrow.Message{a, b} {
		if err := n.Step(escrow.Input{Now: now, Msg: &part}); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.PeerSeq("us"); got != 14 {
		t.Fatalf("node's contiguous seq of us after the split chain = %d, want 14", got)
	}
	if rd := n.Ready(); len(rd.Send) != 0 {
		t.Fatalf("node asked for a repair after a split chain: %+v", rd.Send)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func collectCount(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	n := 0
	for range ch {
		n++
	}
	return n
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
