package escrow

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"
)

// t0 is the start of every test clock.
var t0 = time.Unix(1_700_000_000, 0).UTC()

// memStore is a tiny in-memory Storage: it applies each Ready's Persist the
// way a runtime must (one batch, in order) and rebuilds a State from it, so
// tests can "crash" a node and restore it. Rows and holds go through the
// storage codecs, so the codecs are exercised by every test that persists.
type memStore struct {
	rows    map[[2]string][]byte // (sku, region) -> EncodeRow
	holds   map[string][]byte    // id -> EncodeHold
	idem    map[string]IdemEntry
	seq     uint64
	peerSeq map[string]uint64
	recount map[string]time.Time
	batches int
	// ranges: rows each ScanRowsFrom call handed out (snapshot tests).
	ranges []int
	region string // owner of the holds, learnt from the first hold event (checkEvents)
	index  *storeIndex
}

func newMemStore() *memStore {
	return &memStore{rows: map[[2]string][]byte{}, holds: map[string][]byte{},
		idem: map[string]IdemEntry{}, peerSeq: map[string]uint64{}, recount: map[string]time.Time{},
		index: newStoreIndex()}
}

// apply writes p. deletesFirst chooses the order of deletes and puts inside
// the batch: a Ready must mean the same thing in either order.
func (s *memStore) apply(t testing.TB, p *Persist, deletesFirst bool) {
	t.Helper()
	checkEvents(t, s, p)
	if err := s.index.apply(p); err != nil {
		t.Fatalf("persist: expiry index: %v", err)
	}
	s.batches++
	if p.Seq < s.seq {
		t.Fatalf("persist: sequence went back from %d to %d", s.seq, p.Seq)
	}
	s.seq = p.Seq
	del := func() {
		for _, id := range p.DeletedHolds {
			delete(s.holds, id)
		}
		for _, k := range p.DeletedIdem {
			delete(s.idem, k)
		}
	}
	if deletesFirst {
		del()
	}
	for i := range p.Rows {
		r := &p.Rows[i]
		b := EncodeRow(nil, r)
		got, err := DecodeRow(b)
		if err != nil {
			t.Fatalf("persist: row %s/%s does not decode: %v", r.Region, r.SKU, err)
		}
		if !got.Equal(r) {
			t.Fatalf("persist: row round trip: %+v != %+v", got, *r)
		}
		k := [2]string{r.SKU, r.Region}
		if old, ok := s.rows[k]; ok {
			prev, _ := DecodeRow(old)
			if prev.Seq > r.Seq {
				t.Fatalf("persist: row %s/%s went back from seq %d to %d", r.Region, r.SKU, prev.Seq, r.Seq)
			}
		}
		s.rows[k] = b
	}
	for i := range p.Holds {
		h := p.Holds[i]
		b := EncodeHold(nil, h)
		if _, err := DecodeHold(b); err != nil {
			t.Fatalf("persist: hold %s does not decode: %v", h.ID, err)
		}
		s.holds[h.ID] = b
	}
	for _, e := range p.Idem {
		s.idem[e.Key] = e
	}
	if !deletesFirst {
		del()
	}
	for r, q := range p.PeerSeq {
		s.peerSeq[r] = q
	}
	for _, m := range p.Recounts {
		s.recount[m.SKU] = m.AsOf
	}
}

// state returns what a runtime would load on restart.
func (s *memStore) state(t testing.TB) *State {
	t.Helper()
	st := &State{Seq: s.seq, PeerSeq: map[string]uint64{}}
	for _, b := range s.rows {
		r, err := DecodeRow(b)
		if err != nil {
			t.Fatal(err)
		}
		st.Rows = append(st.Rows, r)
	}
	sort.Slice(st.Rows, func(i, j int) bool {
		if st.Rows[i].SKU != st.Rows[j].SKU {
			return st.Rows[i].SKU < st.Rows[j].SKU
		}
		return st.Rows[i].Region < st.Rows[j].Region
	})
	for _, b := range s.holds {
		h, err := DecodeHold(b)
		if err != nil {
			t.Fatal(err)
		}
		st.Holds = append(st.Holds, h)
	}
	sort.Slice(st.Holds, func(i, j int) bool { return st.Holds[i].ID < st.Holds[j].ID })
	for _, e := range s.idem {
		st.Idem = append(st.Idem, e)
	}
	sort.Slice(st.Idem, func(i, j int) bool { return st.Idem[i].Key < st.Idem[j].Key })
	for r, q := range s.peerSeq {
		st.PeerSeq[r] = q
	}
	for sku, at := range s.recount {
		st.Recounts = append(st.Recounts, RecountMark{SKU: sku, AsOf: at})
	}
	sort.Slice(st.Recounts, func(i, j int) bool { return st.Recounts[i].SKU < st.Recounts[j].SKU })
	return st
}

// tnode drives one node on its own: every Step is followed by its Ready,
// persisted to a memStore; messages are collected in sent.
type tnode struct {
	t     testing.TB
	cfg   Config
	n     *Node
	now   time.Time
	req   uint64
	store *memStore
	sent  []Message
	last  Ready // the last Ready taken
	// replies has every reply delivered, by ReqID.
	replies map[uint64]Reply
	// deletesFirst is the order in which drain applies each batch
	// (memStore.apply): a Ready must mean the same in either order.
	deletesFirst bool
}

func newTNode(t testing.TB, cfg Config) *tnode {
	t.Helper()
	if cfg.Region == "" {
		cfg.Region = "eu"
	}
	if cfg.DigestInterval == 0 {
		cfg.DigestInterval = -1
	}
	if cfg.LowWater == 0 && cfg.TopUpHorizon == 0 {
		// The harness runs plain borrow-on-miss unless a test sets a
		// top-up policy: the default demand-driven top-up
		// (DefaultTopUpHorizon) has tests of its own (topup_default_test.go).
		cfg.TopUpHorizon = -1
	}
	store := newMemStore()
	if cfg.MaxResidentSKUs > 0 {
		cfg.Rows = store // the bounded SKU cache reads back what was persisted
	}
	if cfg.MaxResidentHolds > 0 {
		cfg.Holds = store // and the bounded hold cache
	}
	n, err := NewNode(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &tnode{t: t, cfg: cfg, n: n, now: t0, store: store, replies: map[uint64]Reply{}}
}

// drain takes one Ready, persists it and returns its replies.
func (tn *tnode) drain() []Reply {
	tn.t.Helper()
	if !tn.n.HasReady() {
		tn.last = Ready{}
		return nil
	}
	rd := tn.n.Ready()
	// A Ready's slices and the hold copies no reply shares are the node's
	// again once Advanced (readybufs.go, holdout.go): the harness keeps
	// copies.
	keepReady(&rd)
	tn.last = rd
	tn.store.apply(tn.t, &rd.Persist, tn.deletesFirst)
	tn.sent = append(tn.sent, rd.Send...)
	for _, r := range rd.Reply {
		if _, dup := tn.replies[r.ReqID]; dup && r.ReqID != 0 {
			tn.t.Fatalf("second reply to request %d", r.ReqID)
		}
		tn.replies[r.ReqID] = r
	}
	tn.n.Advance()
	return rd.Reply
}

// do runs one command at the node's clock and returns its reply, which
// must come in the same Ready.
func (tn *tnode) do(c Command) Reply {
	tn.t.Helper()
	tn.req++
	c.ReqID = tn.req
	if err := tn.n.Step(Input{Now: tn.now, Cmd: &c}); err != nil {
		tn.t.Fatalf("step %s: %v", c.Kind, err)
	}
	rs := tn.drain()
	for _, r := range rs {
		if r.ReqID == c.ReqID {
			if r.Kind != c.Kind {
				tn.t.Fatalf("reply kind %s for command %s", r.Kind, c.Kind)
			}
			return r
		}
	}
	tn.t.Fatalf("no reply to %s (req %d) in %d replies", c.Kind, c.ReqID, len(rs))
	return Reply{}
}

// step feeds one input at the node's clock (c == nil: a tick) without
// taking the Ready, so that several inputs share one Ready.
func (tn *tnode) step(c *Command) {
	tn.t.Helper()
	if err := tn.n.Step(Input{Now: tn.now, Cmd: c}); err != nil {
		tn.t.Fatal(err)
	}
}

func (tn *tnode) tick(d time.Duration) {
	tn.t.Helper()
	tn.now = tn.now.Add(d)
	tn.step(nil)
	tn.drain()
}

func (tn *tnode) restock(sku string, qty uint64) {
	tn.t.Helper()
	if r := tn.do(Command{Kind: CmdRestock, SKU: sku, Qty: qty}); r.Err != nil || r.Applied != qty {
		tn.t.Fatalf("restock %s %d: %+v", sku, qty, r)
	}
}

func (tn *tnode) hold(lines ...Line) Hold {
	tn.t.Helper()
	r := tn.do(Command{Kind: CmdHold, Lines: lines})
	if r.Err != nil || r.Hold == nil {
		tn.t.Fatalf("hold %v: %v", lines, r.Err)
	}
	return *r.Hold
}

// restart crashes the node and restores it from what it persisted.
func (tn *tnode) restart() {
	tn.t.Helper()
	st := tn.store.state(tn.t)
	if tn.cfg.MaxResidentSKUs > 0 {
		st.Rows = nil // read through the row source
	}
	if tn.cfg.MaxResidentHolds > 0 {
		st.Holds, st.Idem = nil, nil // read through the hold source
		st.HeldHolds = uint64(len(tn.store.index.got.holds))
		st.NewestHold, st.NewestHoldKnown = tn.store.newestHold(), true
	}
	n, err := NewNode(tn.cfg, st)
	if err != nil {
		tn.t.Fatalf("restore: %v", err)
	}
	tn.n = n
}

// snapshot is the observable durable state of a node, to compare before
// and after an input that must change nothing.
type snapshot struct {
	Rows  []Row
	Holds []Hold
	SKUs  []string
	Seq   uint64
}

func snap(n *Node) snapshot {
	s := snapshot{Rows: n.Rows(), SKUs: n.SKUs(), Seq: n.Seq()}
	n.ForEachHold(func(h *Hold) { s.Holds = append(s.Holds, h.Clone()) })
	sort.Slice(s.Holds, func(i, j int) bool { return s.Holds[i].ID < s.Holds[j].ID })
	return s
}

func (s snapshot) String() string {
	type plain snapshot // no String method: no recursion
	return fmt.Sprintf("%+v", plain(s))
}

func l(sku string, qty uint64) Line { return Line{SKU: sku, Qty: qty} }

func wantCode(t testing.TB, what string, err *Error, code Code) {
	t.Helper()
	if code == 0 {
		if err != nil {
			t.Fatalf("%s: unexpected error %v", what, err)
		}
		return
	}
	if err == nil {
		t.Fatalf("%s: no error, want %s", what, code)
	}
	if err.Code != code {
		t.Fatalf("%s: error %v, want code %s", what, err, code)
	}
	if err.Detail == "" {
		t.Fatalf("%s: error %s without a message", what, code)
	}
}

// advanced takes n's Ready and Advances it, for a test that reads the
// Ready afterwards: the node reuses a Ready's Events, Reply, Send and
// Persist.Holds slices, and the hold copies no reply shares, once it is
// Advanced (readybufs.go, holdout.go), so the Ready returned has copies
// of them (keepReady).
func advanced(n *Node) Ready {
	rd := n.Ready()
	keepReady(&rd)
	n.Advance()
	return rd
}

// keepReady makes rd readable after its Advance: its Events, Reply, Send
// and Persist.Holds slices become copies, and so does every hold they
// point to that no reply shares (one copy per hold copy). A reply's hold
// is the node's to keep valid: it stays, and so do the events and
// Persist.Holds entries that share it.
func keepReady(rd *Ready) {
	clones := map[*Hold]*Hold{}
	for i := range rd.Reply {
		if h := rd.Reply[i].Hold; h != nil {
			clones[h] = h
		}
	}
	clone := func(h *Hold) *Hold {
		if h == nil {
			return nil
		}
		if c, ok := clones[h]; ok {
			return c
		}
		c := new(Hold)
		*c = *h
		clones[h] = c
		return c
	}
	rd.Persist.Events, rd.Reply, rd.Send = slices.Clone(rd.Persist.Events), slices.Clone(rd.Reply), slices.Clone(rd.Send)
	for i := range rd.Persist.Events {
		rd.Persist.Events[i].Hold = clone(rd.Persist.Events[i].Hold)
	}
	if rd.Persist.Holds != nil {
		hs := make([]*Hold, len(rd.Persist.Holds))
		for i, h := range rd.Persist.Holds {
			hs[i] = clone(h)
		}
		rd.Persist.Holds = hs
	}
}
