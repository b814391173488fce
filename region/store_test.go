package region

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
)

// ---- test model: what the store must contain after a sequence of Persists ----

const stRegion = "eu"

var stPeers = []string{"ap", "us"}

// stModel is the reference state: Persists applied to plain maps.
type stModel struct {
	rows  map[string]escrow.Row // "sku\x00region"
	holds map[string]escrow.Hold
	idem  map[string]escrow.IdemEntry
	seq   uint64
	peer  map[string]uint64
}

func newStModel() *stModel {
	return &stModel{rows: map[string]escrow.Row{}, holds: map[string]escrow.Hold{},
		idem: map[string]escrow.IdemEntry{}, peer: map[string]uint64{}}
}

func (m *stModel) apply(p *escrow.Persist) {
	for _, r := range p.Rows {
		m.rows[r.SKU+"\x00"+r.Region] = r.Clone()
	}
	for _, h := range p.Holds {
		m.holds[h.ID] = h.Clone()
	}
	for _, id := range p.DeletedHolds {
		delete(m.holds, id)
	}
	for _, e := range p.Idem {
		m.idem[e.Key] = e
	}
	for _, k := range p.DeletedIdem {
		delete(m.idem, k)
	}
	for r, s := range p.PeerSeq {
		m.peer[r] = s
	}
	m.seq = p.Seq
}

// state renders the model in Load's order: rows by SKU then region, holds
// by id, idempotency keys by key.
func (m *stModel) state() *escrow.State {
	st := &escrow.State{Seq: m.seq}
	for _, k := range sortedKeys(m.rows) {
		st.Rows = append(st.Rows, m.rows[k].Clone())
	}
	for _, k := range sortedKeys(m.holds) {
		h := m.holds[k]
		st.Holds = append(st.Holds, h.Clone())
	}
	for _, k := range sortedKeys(m.idem) {
		st.Idem = append(st.Idem, m.idem[k])
	}
	if len(m.peer) > 0 {
		st.PeerSeq = make(map[string]uint64, len(m.peer))
		for r, s := range m.peer {
			st.PeerSeq[r] = s
		}
	}
	return st
}

// stGen produces random, valid Persists relative to a model, the way a
// node would: own rows bump the sequence, holds move HELD → terminal, are
// extended, deleted; idempotency keys come and go; peers' rows and
// sequences grow.
type stGen struct {
	rng    *rand.Rand
	m      *stModel
	now    time.Time
	nextID uint64
	skus   int
}

func newStGen(seed uint64, m *stModel) *stGen {
	return &stGen{rng: rand.New(rand.NewPCG(seed, 0x73746f7265)), m: m, skus: 24,
		now: time.Unix(1_780_000_000, 0).UTC()}
}

// applyNext applies the next Persist to s and to the model, failing the
// test if the store refuses it; it returns that Persist.
func (g *stGen) applyNext(t testing.TB, s *Store) *escrow.Persist {
	t.Helper()
	p := g.next()
	if err := s.Apply(p); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	g.m.apply(p)
	return p
}

// stTime returns t as the codec returns it (UTC, no monotonic reading).
func stTime(t time.Time) time.Time { return time.Unix(0, t.UnixNano()).UTC() }

func (g *stGen) holdID() string {
	g.nextID++
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	var b [18]byte
	v := g.nextID*2654435761 + g.rng.Uint64()%1000
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = alphabet[v%32]
		v /= 32
	}
	return stRegion + "-" + string(b[:])
}

func (g *stGen) row(sku, region string, seq uint64) escrow.Row {
	r := escrow.Row{SKU: sku, Region: region, Seq: seq}
	if old, ok := g.m.rows[sku+"\x00"+region]; ok {
		r = old.Clone()
		r.Seq = seq
	}
	r.Minted += uint64(g.rng.IntN(5))
	add := uint64(g.rng.IntN(4))
	r.Reserved += add
	ret := uint64(g.rng.IntN(int(add) + 1))
	r.Released += ret
	if r.Reserved > r.Released+r.Sold && g.rng.IntN(2) == 0 {
		r.Sold++
	}
	r.Shrunk += uint64(g.rng.IntN(2))
	for _, p := range append([]string{stRegion}, stPeers...) {
		if p != region && g.rng.IntN(3) == 0 {
			found := false
			for i := range r.Sent {
				if r.Sent[i].To == p {
					r.Sent[i].Qty++
					found = true
				}
			}
			if !found {
				r.Sent = append(r.Sent, escrow.Transfer{To: p, Qty: 1})
				sort.Slice(r.Sent, func(i, j int) bool { return r.Sent[i].To < r.Sent[j].To })
			}
		}
	}
	return r
}

func (g *stGen) sku() string { return "sku-" + strconv.Itoa(g.rng.IntN(g.skus)) }

func (g *stGen) next() *escrow.Persist {
	g.now = g.now.Add(time.Duration(g.rng.IntN(2000)) * time.Millisecond)
	p := &escrow.Persist{Seq: g.m.seq}
	seen := map[string]bool{}
	for n := g.rng.IntN(4); n > 0; n-- { // own rows
		s := g.sku()
		if seen[s] {
			continue
		}
		seen[s] = true
		p.Seq++
		p.Rows = append(p.Rows, g.row(s, stRegion, p.Seq))
	}
	for n := g.rng.IntN(3); n > 0; n-- { // peer rows
		s, r := g.sku(), stPeers[g.rng.IntN(len(stPeers))]
		if seen[s+r] {
			continue
		}
		seen[s+r] = true
		seq := g.m.peer[r] + uint64(1+g.rng.IntN(5))
		p.Rows = append(p.Rows, g.row(s, r, seq))
		if g.rng.IntN(2) == 0 {
			if p.PeerSeq == nil {
				p.PeerSeq = map[string]uint64{}
			}
			p.PeerSeq[r] = seq
		}
	}
	touched := map[string]bool{}
	for n := g.rng.IntN(5); n > 0; n-- { // new holds
		id := g.holdID()
		touched[id] = true
		h := escrow.Hold{ID: id, State: escrow.Held, Created: stTime(g.now),
			Expires:    stTime(g.now.Add(time.Duration(1+g.rng.IntN(600)) * time.Second)),
			MaxExpires: stTime(g.now.Add(time.Hour)), Updated: stTime(g.now),
			Meta: strings.Repeat("m", g.rng.IntN(3))}
		for i, l := 0, 1+g.rng.IntN(3); i < l; i++ { // sorted by SKU, distinct, as the node stores them
			h.Lines = append(h.Lines, escrow.Line{SKU: "sku-" + strconv.Itoa(10+i*7+g.rng.IntN(7)), Qty: uint64(1 + g.rng.IntN(3))})
		}
		if g.rng.IntN(2) == 0 {
			h.IdemKey = "idem-" + id
			p.Idem = append(p.Idem, escrow.IdemEntry{Key: h.IdemKey, HoldID: id, Hash: g.rng.Uint64(),
				Expires: stTime(g.now.Add(24 * time.Hour))})
		}
		p.Holds = append(p.Holds, &h)
	}
	for _, id := range sortedKeys(g.m.holds) { // transitions
		h := g.m.holds[id]
		if touched[id] || g.rng.IntN(4) != 0 {
			continue
		}
		touched[id] = true
		if h.State != escrow.Held {
			if g.rng.IntN(2) == 0 {
				p.DeletedHolds = append(p.DeletedHolds, id)
			}
			continue
		}
		// It leaves its expiry index entry (a later deadline or a
		// terminal state); the node names the entry, as here.
		p.HoldsUnindexed = append(p.HoldsUnindexed, escrow.Deadline{Name: id, At: h.Expires})
		h = h.Clone()
		h.Updated = stTime(g.now)
		switch g.rng.IntN(4) {
		case 0:
			h.Expires = stTime(h.Expires.Add(time.Duration(1+g.rng.IntN(60)) * time.Second))
		case 1:
			h.State = escrow.Confirmed
		case 2:
			h.State = escrow.Released
		case 3:
			h.State = escrow.Expired
		}
		p.Holds = append(p.Holds, &h)
	}
	for _, k := range sortedKeys(g.m.idem) {
		e := g.m.idem[k]
		switch g.rng.IntN(16) {
		case 0, 1:
			p.DeletedIdem = append(p.DeletedIdem, k)
			p.IdemUnindexed = append(p.IdemUnindexed, escrow.Deadline{Name: k, At: e.Expires})
		case 2:
			// Replaced (the node reuses a key past its expiry): its old
			// entry ends and the new one is written in the same batch,
			// sometimes at the same deadline.
			p.IdemUnindexed = append(p.IdemUnindexed, escrow.Deadline{Name: k, At: e.Expires})
			if g.rng.IntN(2) == 0 {
				e.Expires = stTime(g.now.Add(24 * time.Hour))
			}
			e.Hash = g.rng.Uint64()
			p.Idem = append(p.Idem, e)
		}
	}
	return p
}

// ---- helpers ----

func stLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func stOpen(t testing.TB, fs vfs.FS, dir string) *Store {
	t.Helper()
	return stOpenWith(t, dir, StoreOptions{Region: stRegion, FS: fs, Logger: stLogger(t), CacheBytes: 1 << 20,
		MemTableBytes: 256 << 10})
}

// stOpenWith opens the store in dir with opts, failing the test if it
// cannot.
func stOpenWith(t testing.TB, dir string, opts StoreOptions) *Store {
	t.Helper()
	s, err := OpenStore(dir, opts)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	return s
}

func stLoad(t testing.TB, s *Store) *escrow.State {
	t.Helper()
	st, err := s.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return st
}

// stDiff explains how two states differ ("" when equal).
func stDiff(got, want *escrow.State) string {
	if reflect.DeepEqual(got, want) {
		return ""
	}
	var b strings.Builder
	if got.Seq != want.Seq {
		fmt.Fprintf(&b, "seq %d, want %d; ", got.Seq, want.Seq)
	}
	if !reflect.DeepEqual(got.PeerSeq, want.PeerSeq) {
		fmt.Fprintf(&b, "peer seqs %v, want %v; ", got.PeerSeq, want.PeerSeq)
	}
	if !reflect.DeepEqual(got.Rows, want.Rows) {
		fmt.Fprintf(&b, "rows (%d, want %d) differ: got %+v want %+v; ", len(got.Rows), len(want.Rows),
			firstDiff(got.Rows, want.Rows), firstDiff(want.Rows, got.Rows))
	}
	if !reflect.DeepEqual(got.Holds, want.Holds) {
		fmt.Fprintf(&b, "holds (%d, want %d) differ: got %+v want %+v; ", len(got.Holds), len(want.Holds),
			firstDiff(got.Holds, want.Holds), firstDiff(want.Holds, got.Holds))
	}
	if !reflect.DeepEqual(got.Idem, want.Idem) {
		fmt.Fprintf(&b, "idem keys (%d, want %d) differ; ", len(got.Idem), len(want.Idem))
	}
	if b.Len() == 0 {
		return "states differ (nil vs empty?)"
	}
	return b.String()
}

func firstDiff[T any](a, b []T) any {
	for i := range a {
		if i >= len(b) || !reflect.DeepEqual(a[i], b[i]) {
			return a[i]
		}
	}
	return nil
}

// stCheckIndexes compares the expiry index and own-row change scans with the model.
func stCheckIndexes(t testing.TB, s *Store, m *stModel) {
	t.Helper()
	var held []ExpiringHold
	for _, h := range m.holds {
		if h.State == escrow.Held {
			held = append(held, ExpiringHold{HoldID: h.ID, Expires: h.Expires})
		}
	}
	sort.Slice(held, func(i, j int) bool {
		if !held[i].Expires.Equal(held[j].Expires) {
			return held[i].Expires.Before(held[j].Expires)
		}
		return held[i].HoldID < held[j].HoldID
	})
	got, err := s.ExpiringHolds(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), 1<<20)
	if err != nil {
		t.Fatalf("ExpiringHolds: %v", err)
	}
	if len(got) != len(held) || (len(held) > 0 && !reflect.DeepEqual(got, held)) {
		t.Fatalf("expiry index scan:\n got %v\nwant %v", got, held)
	}
	if len(held) > 1 { // a bounded scan stops at the deadline
		mid := held[len(held)/2].Expires
		want := 0
		for _, h := range held {
			if !h.Expires.After(mid) {
				want++
			}
		}
		part, err := s.ExpiringHolds(mid, 1<<20)
		if err != nil || len(part) != want {
			t.Fatalf("ExpiringHolds(%v) = %d entries, %v; want %d", mid, len(part), err, want)
		}
	}
	var own []escrow.Row
	for _, r := range m.rows {
		if r.Region == stRegion {
			own = append(own, r)
		}
	}
	sort.Slice(own, func(i, j int) bool { return own[i].Seq < own[j].Seq })
	rows, err := s.OwnRowsSince(0, 0)
	if err != nil {
		t.Fatalf("OwnRowsSince(0): %v", err)
	}
	if len(rows) != len(own) || (len(own) > 0 && !reflect.DeepEqual(rows, own)) {
		t.Fatalf("own rows since 0:\n got %+v\nwant %+v", rows, own)
	}
	if len(own) > 2 {
		from := own[len(own)/2].Seq
		rows, err := s.OwnRowsSince(from, 1)
		if err != nil || len(rows) != 1 || rows[0].Seq != own[len(own)/2+1].Seq {
			t.Fatalf("OwnRowsSince(%d, 1) = %+v, %v; want the row at seq %d", from, rows, err, own[len(own)/2+1].Seq)
		}
	}
}

// ---- tests ----

func TestStoreRoundTrip(t *testing.T) {
	fs := vfs.NewMem()
	s := stOpen(t, fs, "db")
	defer func() { s.Close() }()
	m := newStModel()
	now := time.Unix(1_780_000_000, 0).UTC()
	at := func(d time.Duration) time.Time { return stTime(now.Add(d)) }
	hold := func(id string, st escrow.HoldState, exp time.Duration) escrow.Hold {
		return escrow.Hold{ID: id, Lines: []escrow.Line{{SKU: "A", Qty: 1}, {SKU: "B", Qty: 2}}, State: st,
			Created: at(0), Expires: at(exp), MaxExpires: at(time.Hour), Updated: at(0), IdemKey: "k-" + id, Meta: "cart 7"}
	}
	p1 := &escrow.Persist{
		Rows: []escrow.Row{
			{SKU: "A", Region: stRegion, Seq: 1, Minted: 10, Reserved: 3, Released: 1, Sold: 1, Sent: []escrow.Transfer{{To: "us", Qty: 2}}},
			{SKU: "B", Region: stRegion, Seq: 2, Minted: 5, Reserved: 2},
			{SKU: "A", Region: "us", Seq: 40, Minted: 7, Shrunk: 1, Sent: []escrow.Transfer{{To: "ap", Qty: 1}, {To: stRegion, Qty: 3}}},
		},
		Holds: holdPtrs(
			hold("eu-00000000000000000a", escrow.Held, 10*time.Minute),
			hold("eu-00000000000000000b", escrow.Held, 5*time.Minute),
			hold("eu-00000000000000000c", escrow.Confirmed, time.Minute),
			hold("eu-00000000000000000d", escrow.Released, time.Minute),
			hold("eu-00000000000000000e", escrow.Expired, time.Minute),
		),
		Idem: []escrow.IdemEntry{
			{Key: "k-a", HoldID: "eu-00000000000000000a", Hash: 1, Expires: at(24 * time.Hour)},
			{Key: "k-b", HoldID: "eu-00000000000000000b", Hash: 1 << 63, Expires: at(23 * time.Hour)},
		},
		Seq:     2,
		PeerSeq: map[string]uint64{"us": 40, "ap": 3},
	}
	ext := hold("eu-00000000000000000a", escrow.Held, 20*time.Minute)
	conf := hold("eu-00000000000000000b", escrow.Confirmed, 5*time.Minute)
	p2 := &escrow.Persist{
		Rows:         []escrow.Row{{SKU: "A", Region: stRegion, Seq: 3, Minted: 10, Reserved: 4, Released: 1, Sold: 1, Sent: []escrow.Transfer{{To: "us", Qty: 2}}}},
		Holds:        holdPtrs(ext, conf, hold("eu-00000000000000000f", escrow.Held, time.Minute)),
		DeletedHolds: []string{"eu-00000000000000000d", "eu-0000000000000000zz"},
		Idem:         []escrow.IdemEntry{{Key: "k-f", HoldID: "eu-00000000000000000f", Hash: 9, Expires: at(time.Hour)}},
		DeletedIdem:  []string{"k-b"},
		// a extended, b confirmed: both leave their entries; so does k-b.
		HoldsUnindexed: []escrow.Deadline{{Name: "eu-00000000000000000a", At: at(10 * time.Minute)},
			{Name: "eu-00000000000000000b", At: at(5 * time.Minute)}},
		IdemUnindexed: []escrow.Deadline{{Name: "k-b", At: at(23 * time.Hour)}},
		Seq:           3,
		PeerSeq:       map[string]uint64{"us": 41},
	}
	for i, p := range []*escrow.Persist{p1, p2} {
		if err := s.Apply(p); err != nil {
			t.Fatalf("Apply %d: %v", i+1, err)
		}
		m.apply(p)
		if d := stDiff(stLoad(t, s), m.state()); d != "" {
			t.Fatalf("after Apply %d: %s", i+1, d)
		}
		stCheckIndexes(t, s, m)
	}
	// Expiry order: f (1m) before a (20m); b left the index when confirmed.
	exp, err := s.ExpiringHolds(at(time.Hour), 10)
	if err != nil || len(exp) != 2 || exp[0].HoldID != "eu-00000000000000000f" || exp[1].HoldID != "eu-00000000000000000a" ||
		!exp[1].Expires.Equal(at(20*time.Minute)) {
		t.Fatalf("ExpiringHolds = %v, %v", exp, err)
	}
	if exp, _ := s.ExpiringHolds(at(30*time.Second), 10); len(exp) != 0 {
		t.Fatalf("ExpiringHolds before any deadline = %v", exp)
	}
	rows, err := s.OwnRowsSince(2, 10)
	if err != nil || len(rows) != 1 || rows[0].SKU != "A" || rows[0].Seq != 3 {
		t.Fatalf("OwnRowsSince(2) = %+v, %v", rows, err)
	}
	if rows, _ := s.OwnRowsSince(0, 10); len(rows) != 2 || rows[0].SKU != "B" || rows[1].SKU != "A" {
		t.Fatalf("OwnRowsSince(0) = %+v", rows)
	}
	st := s.Stats()
	if st.Commits != 2 || st.Last.Entries == 0 || st.Last.Bytes == 0 || !st.Last.Synced || st.DurableSeq != 3 {
		t.Fatalf("stats = %+v", st)
	}
	if s.Metrics() == nil {
		t.Fatal("Metrics() = nil on an open store")
	}
	// An empty Persist at the same sequence writes nothing.
	if err := s.Apply(&escrow.Persist{Seq: 3}); err != nil || s.Stats().Commits != 2 {
		t.Fatalf("empty Apply: %v, commits %d", err, s.Stats().Commits)
	}
	if err := s.Apply(&escrow.Persist{Seq: 2}); err == nil {
		t.Fatal("Apply with a sequence below the stored one succeeded")
	}
	if err := s.Apply(&escrow.Persist{Seq: 3, Holds: holdPtrs(hold("us-00000000000000000a", escrow.Held, time.Minute))}); err == nil {
		t.Fatal("Apply of another region's hold succeeded")
	}
	// Own row changes need fresh, distinct sequence numbers (one change
	// index entry per seq); rewriting a row at its stored seq is fine.
	for _, bad := range []*escrow.Persist{
		{Seq: 5, Rows: []escrow.Row{{SKU: "C", Region: stRegion, Seq: 4}, {SKU: "D", Region: stRegion, Seq: 4}}},
		{Seq: 5, Rows: []escrow.Row{{SKU: "C", Region: stRegion, Seq: 3}}},
		{Seq: 5, Rows: []escrow.Row{{SKU: "C", Region: stRegion, Seq: 6}}},
	} {
		if err := s.Apply(bad); err == nil {
			t.Fatalf("Apply accepted own rows %+v at persist seq %d", bad.Rows, bad.Seq)
		}
	}
	if err := s.Apply(&escrow.Persist{Seq: 3, Rows: p2.Rows}); err != nil {
		t.Fatalf("rewriting an own row at its stored seq: %v", err)
	}
	// Close and reopen: the same state, and the indexes were rebuilt.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(p2); !errors.Is(err, ErrStoreClosed) {
		t.Fatalf("Apply after Close: %v", err)
	}
	s = stOpen(t, fs, "db")
	if d := stDiff(stLoad(t, s), m.state()); d != "" {
		t.Fatalf("after reopen: %s", d)
	}
	stCheckIndexes(t, s, m)
}

// TestStoreRandomRoundTrip applies generated Persists, reopening now and
// then, and compares Load and the index scans with the model throughout.
func TestStoreRandomRoundTrip(t *testing.T) {
	seed := stSeed(t)
	fs := vfs.NewMem()
	s := stOpen(t, fs, "db")
	defer func() { s.Close() }()
	m := newStModel()
	g := newStGen(seed, m)
	steps := 300
	if testing.Short() {
		steps = 100
	}
	for i := 0; i < steps; i++ {
		p := g.next()
		if err := s.Apply(p); err != nil {
			t.Fatalf("seed %d step %d: Apply: %v", seed, i, err)
		}
		m.apply(p)
		if i%10 == 9 {
			if d := stDiff(stLoad(t, s), m.state()); d != "" {
				t.Fatalf("seed %d step %d: %s", seed, i, d)
			}
			stCheckIndexes(t, s, m)
		}
		if i%50 == 49 {
			if err := s.Reopen(); err != nil {
				t.Fatalf("seed %d step %d: Reopen: %v", seed, i, err)
			}
		}
	}
}

// stSeed returns the seed of a randomized test: HOLDFAST_SEED or the clock,
// logged so that a failure can be replayed.
func stSeed(t testing.TB) uint64 {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("HOLDFAST_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("HOLDFAST_SEED=%q: %v", v, err)
		}
		seed = n
	}
	t.Logf("seed %d (replay with HOLDFAST_SEED=%d)", seed, seed)
	return seed
}

func TestStoreRefusesForeignOrUnknownStore(t *testing.T) {
	fs := vfs.NewMem()
	s := stOpen(t, fs, "db")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore("db", StoreOptions{Region: "us", FS: fs, Logger: stLogger(t)}); err == nil ||
		!strings.Contains(err.Error(), `belongs to region "eu"`) {
		t.Fatalf("opening eu's store as us: %v", err)
	}
	stRawSet(t, fs, "db", keyMetaVersion, []byte{storeFormatVersion + 1})
	if _, err := OpenStore("db", StoreOptions{Region: stRegion, FS: fs, Logger: stLogger(t)}); err == nil ||
		!strings.Contains(err.Error(), "unknown format version") {
		t.Fatalf("opening a store of format %d: %v", storeFormatVersion+1, err)
	}
	// A pebble DB with data but no meta is not a region store.
	stRawSet(t, fs, "other", []byte("r/A\x00eu"), []byte("x"))
	if _, err := OpenStore("other", StoreOptions{Region: stRegion, FS: fs, Logger: stLogger(t)}); err == nil ||
		!strings.Contains(err.Error(), "no format version") {
		t.Fatalf("opening a foreign pebble DB: %v", err)
	}
}

// stRawSet writes one key straight into the pebble DB under dir.
func stRawSet(t testing.TB, fs vfs.FS, dir string, k, v []byte) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{FS: fs, Logger: &pebbleLogger{log: stLogger(t), onFatal: func(error) {}}})
	if err != nil {
		t.Fatal(err)
	}
	if v == nil {
		err = db.Delete(k, pebble.Sync)
	} else {
		err = db.Set(k, v, pebble.Sync)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestStoreCorruptOnLoad damages one key at a time and checks that Load
// (or OpenStore, for the indexes) fails naming the key and the problem.
func TestStoreCorruptOnLoad(t *testing.T) {
	now := time.Unix(1_780_000_000, 0).UTC()
	foreign := escrow.EncodeHold(nil, &escrow.Hold{ID: "us-0000000000000000aa", State: escrow.Confirmed,
		Lines: []escrow.Line{{SKU: "A", Qty: 1}}, Created: now, Expires: now, MaxExpires: now, Updated: now})
	futureRow := escrow.EncodeRow(nil, &escrow.Row{SKU: "A", Region: stRegion, Seq: 99, Minted: 1})
	otherRow := escrow.EncodeRow(nil, &escrow.Row{SKU: "B", Region: stRegion, Seq: 1, Minted: 1})
	cases := []struct {
		name    string
		key     []byte
		val     []byte // nil: delete the key
		atOpen  bool
		wantKey string
		want    string
	}{
		{"garbage row", []byte("r/A\x00eu"), []byte("garbage"), false, `"r/A\x00eu"`, "undecodable row"},
		{"garbage peer row", []byte("r/A\x00us"), []byte{'h', 'f', 1, 'R', 0xff}, false, `"r/A\x00us"`, "undecodable row"},
		{"row under another key", []byte("r/A\x00eu"), otherRow, false, `"r/A\x00eu"`, "holds the row of eu/B"},
		{"own row beyond seq", []byte("r/A\x00eu"), futureRow, false, `"r/A\x00eu"`, "beyond the stored sequence"},
		{"garbage hold", []byte("h/eu-00000000000000000a"), []byte("junk"), false, `"h/eu-00000000000000000a"`, "undecodable hold"},
		{"hold of another region", []byte("h/us-0000000000000000aa"), foreign, false, `"h/us-0000000000000000aa"`, `hold of region "us"`},
		{"hold under another id", []byte("h/eu-00000000000000000b"), stHoldBytes(now, "eu-00000000000000000a"), false, `"h/eu-00000000000000000b"`, "holds hold eu-00000000000000000a"},
		{"held hold without expiry entry", stExpKey(now.Add(time.Minute), "eu-00000000000000000a"), nil, false, `"h/eu-00000000000000000a"`, "no expiry index entry"},
		{"dangling expiry entry", stExpKey(now, "eu-0000000000000000zz"), []byte{}, false, "eu-0000000000000000zz", "without its hold"},
		{"change entry in format 3", appendChangeKey(nil, 1), []byte("A"), false, "c/<1>", "change index entry in a format-4 store"},
		{"garbage short row", []byte("r/A\x00eu"), []byte{'h', 'f', 1, 'r', 0xff}, false, `"r/A\x00eu"`, "undecodable row"},
		{"short row with trailing bytes", []byte("r/A\x00eu"), append(escrow.EncodeRowValue(nil, &escrow.Row{SKU: "A", Region: stRegion, Seq: 1}), 0), false, `"r/A\x00eu"`, "trailing bytes"},
		{"short row sending to its own region", []byte("r/A\x00us"), escrow.EncodeRowValue(nil, &escrow.Row{SKU: "A", Region: "us", Seq: 5, Minted: 3, Sent: []escrow.Transfer{{To: "us", Qty: 1}}}), false, `"r/A\x00us"`, "bad sent entry"},
		{"two own rows at one seq", []byte("r/B\x00eu"), otherRow, false, `"r/B\x00eu"`, `own row at seq 1, as is the own row of SKU "A"`},
		{"garbage idem value", []byte("i/k-a"), []byte{9}, false, `"i/k-a"`, "unknown value version"},
		{"peer seq of own region", []byte("p/eu"), appendU64(nil, 1), false, `"p/eu"`, "invalid region"},
		{"unknown prefix", []byte("z/x"), []byte("1"), false, `"z/x"`, "unknown key prefix"},
		{"missing seq", keyMetaSeq, nil, true, `"m/seq"`, "missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			s := stOpen(t, fs, "db")
			p := &escrow.Persist{
				Rows: []escrow.Row{{SKU: "A", Region: stRegion, Seq: 1, Minted: 3},
					{SKU: "A", Region: "us", Seq: 5, Minted: 3}},
				Holds: []*escrow.Hold{{ID: "eu-00000000000000000a", State: escrow.Held, Lines: []escrow.Line{{SKU: "A", Qty: 1}},
					Created: now, Expires: now.Add(time.Minute), MaxExpires: now.Add(time.Hour), Updated: now}},
				Idem: []escrow.IdemEntry{{Key: "k-a", HoldID: "eu-00000000000000000a", Expires: now.Add(time.Hour)}},
				Seq:  1,
			}
			if err := s.Apply(p); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			stRawSet(t, fs, "db", tc.key, tc.val)
			s, err := OpenStore("db", StoreOptions{Region: stRegion, FS: fs, Logger: stLogger(t)})
			if err == nil {
				defer s.Close()
				if tc.atOpen {
					t.Fatalf("OpenStore accepted a store with %s", tc.name)
				}
				_, err = s.Load()
			} else if !tc.atOpen {
				t.Fatalf("OpenStore failed (Load should): %v", err)
			}
			if err == nil {
				t.Fatalf("Load accepted a store with %s", tc.name)
			}
			if !strings.Contains(err.Error(), tc.wantKey) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name key %s and %q", err, tc.wantKey, tc.want)
			}
			var ce *CorruptStoreError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *CorruptStoreError", err)
			}
		})
	}
}

func stHoldBytes(now time.Time, id string) []byte {
	return escrow.EncodeHold(nil, &escrow.Hold{ID: id, State: escrow.Confirmed, Lines: []escrow.Line{{SKU: "A", Qty: 1}},
		Created: now, Expires: now, MaxExpires: now, Updated: now})
}

func stExpKey(t time.Time, id string) []byte { return appendExpiryKey(nil, timeOrd(t), id) }

// TestStoreApplyAllocs bounds allocations on the hot path (NoSync, so
// that only encoding and batching are measured). The own log's files are
// made large enough that no rotation, truncation or forced flush runs in
// the background while allocations are counted (the count is the
// process's).
func TestStoreApplyAllocs(t *testing.T) {
	s, err := OpenStore("db", StoreOptions{Region: stRegion, FS: vfs.NewMem(), NoSync: true, Logger: stLogger(t),
		WALFileBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := stBenchPersist(256, 64)
	for i := range p.Holds { // steady state: holds already indexed
		p.Holds[i].Expires = p.Holds[i].Expires.Add(time.Second)
	}
	if err := s.Apply(p); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if err := s.Apply(p); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.0f allocations per Apply of 256 holds + 64 rows", allocs)
	if allocs > 40 {
		t.Fatalf("%.0f allocations per Apply of 256 holds: the hot path allocates per hold", allocs)
	}
}

// TestStoreConcurrentReaders runs the read side (anti-entropy scans,
// expiry scans, metrics, stats) against Apply and Reopen. Run with -race.
// Rows a reader gets must be durable: pebble shows a batch to readers
// before its fsync finishes, so OwnRowsSince bounds its scan by the
// sequence of the last durable commit.
func TestStoreConcurrentReaders(t *testing.T) {
	s := stOpen(t, vfs.NewMem(), "db")
	defer s.Close()
	m := newStModel()
	g := newStGen(5, m)
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		for {
			select {
			case <-done:
				return
			default:
			}
			rows, err := s.OwnRowsSince(0, 0)
			if err != nil {
				errc <- fmt.Errorf("OwnRowsSince: %w", err)
				return
			}
			durable := s.Seq()
			for _, r := range rows {
				if r.Seq > durable {
					errc <- fmt.Errorf("OwnRowsSince returned row %s at seq %d, beyond the durable seq %d", r.SKU, r.Seq, durable)
					return
				}
			}
			if _, err := s.ExpiringHolds(time.Now(), 100); err != nil {
				errc <- fmt.Errorf("ExpiringHolds: %w", err)
				return
			}
			_ = s.Metrics()
			_ = s.Stats()
		}
	}()
	n := 400
	if testing.Short() {
		n = 150
	}
	for i := 0; i < n; i++ {
		p := g.next()
		if err := s.Apply(p); err != nil {
			t.Fatalf("Apply %d: %v", i, err)
		}
		m.apply(p)
		if i%100 == 99 {
			if err := s.Reopen(); err != nil {
				t.Fatalf("Reopen: %v", err)
			}
		}
	}
	close(done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if d := stDiff(stLoad(t, s), m.state()); d != "" {
		t.Fatal(d)
	}
}

// TestStoreRefusesTwoOwnRowsOfOneSKU: stage moves each own row's change
// index entry once per batch (rows in key order), so a Persist with two
// versions of one own row is refused whole, and the store keeps what it had.
func TestStoreRefusesTwoOwnRowsOfOneSKU(t *testing.T) {
	s := stOpen(t, vfs.NewMem(), "db")
	defer func() { s.Close() }()
	ok := &escrow.Persist{Rows: []escrow.Row{{SKU: "A", Region: stRegion, Seq: 1, Minted: 10}}, Seq: 1}
	if err := s.Apply(ok); err != nil {
		t.Fatal(err)
	}
	bad := &escrow.Persist{Rows: []escrow.Row{
		{SKU: "A", Region: stRegion, Seq: 2, Minted: 10, Reserved: 1},
		{SKU: "B", Region: stRegion, Seq: 3, Minted: 4},
		{SKU: "A", Region: stRegion, Seq: 4, Minted: 10, Reserved: 2},
	}, Seq: 4}
	err := s.Apply(bad)
	if err == nil || !strings.Contains(err.Error(), `two own rows for SKU "A"`) {
		t.Fatalf("Apply of two rows of A: %v, want a refusal naming the SKU", err)
	}
	if s.Seq() != 1 {
		t.Fatalf("seq %d after the refused batch, want 1", s.Seq())
	}
	rows, err := s.OwnRowsSince(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].SKU != "A" || rows[0].Seq != 1 || rows[0].Reserved != 0 {
		t.Fatalf("own rows after the refused batch: %+v, want A at seq 1 only", rows)
	}
}

// TestStoreRefusesTwoOwnRowsAtOneSeq: a store has one own row per sequence
// (Load refuses two), so two own rows changed at the same sequence are refused whole
// (validate finds them adjacent once sorted by sequence), and the store
// keeps what it had; rows changed at distinct sequences in any order pass.
func TestStoreRefusesTwoOwnRowsAtOneSeq(t *testing.T) {
	s := stOpen(t, vfs.NewMem(), "db")
	defer func() { s.Close() }()
	ok := &escrow.Persist{Rows: []escrow.Row{
		{SKU: "C", Region: stRegion, Seq: 1, Minted: 10},
		{SKU: "A", Region: stRegion, Seq: 3, Minted: 10},
		{SKU: "B", Region: stRegion, Seq: 2, Minted: 10},
	}, Seq: 3}
	if err := s.Apply(ok); err != nil {
		t.Fatal(err)
	}
	bad := &escrow.Persist{Rows: []escrow.Row{
		{SKU: "C", Region: stRegion, Seq: 5, Minted: 10, Reserved: 1},
		{SKU: "A", Region: stRegion, Seq: 4, Minted: 10, Reserved: 1},
		{SKU: "B", Region: stRegion, Seq: 5, Minted: 10, Reserved: 1},
	}, Seq: 5}
	err := s.Apply(bad)
	if err == nil || !strings.Contains(err.Error(), "two own rows changed at seq 5") {
		t.Fatalf("Apply of two rows at seq 5: %v, want a refusal naming the sequence", err)
	}
	if s.Seq() != 3 {
		t.Fatalf("seq %d after the refused batch, want 3", s.Seq())
	}
	rows, err := s.OwnRowsSince(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].SKU != "C" || rows[1].SKU != "B" || rows[2].SKU != "A" {
		t.Fatalf("own rows after the refused batch: %+v, want C, B, A at seqs 1..3", rows)
	}
	for _, r := range rows {
		if r.Reserved != 0 {
			t.Fatalf("row %s changed by the refused batch: %+v", r.SKU, r)
		}
	}
}

// holdPtrs returns pointers to copies of hs, for a Persist's Holds.
func holdPtrs(hs ...escrow.Hold) []*escrow.Hold {
	ps := make([]*escrow.Hold, len(hs))
	for i := range hs {
		ps[i] = &hs[i]
	}
	return ps
}
