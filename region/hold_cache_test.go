package region

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
)

// TestHoldCacheCrashRestart: a region keeping at most 4 holds and keys in
// memory grants, confirms, releases and extends holds, is killed (only
// synced data kept) and reopened twice: every acknowledged hold is read
// back from the store in the state it was acknowledged in, an idempotent
// retry of the first hold replays it, start-up counted the HELD holds
// without loading any, and once the clock passes every deadline each hold
// still HELD expires and its units come back.
func TestHoldCacheCrashRestart(t *testing.T) {
	const seed = 29
	t.Logf("seed %d", seed)
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	mem := vfs.NewCrashableMem()
	open := func(fs vfs.FS) *Region {
		r, err := Open(context.Background(), Config{Name: "eu", DataDir: "db", FS: fs, Logger: quietLogger(), HoldCache: 4,
			Now: now, Escrow: escrow.Config{DigestInterval: -1}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	r := open(mem)
	restock(t, r, "A", 1000)
	type acked struct {
		id    string
		state escrow.HoldState
	}
	var holds []acked
	first := escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}, IdemKey: "key-0", IdemHash: 7,
		TTL: 10 * time.Minute}
	for cycle := range 3 {
		for i := range 60 {
			switch x := rng.IntN(10); {
			case x < 6 || len(holds) == 0:
				cmd := escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}},
					IdemKey: fmt.Sprintf("key-%d-%d", cycle, i), IdemHash: 7, TTL: time.Duration(1+rng.IntN(20)) * time.Minute}
				if len(holds) == 0 {
					cmd = first
				}
				rep := mustDo(t, r, cmd)
				if rep.Err != nil {
					t.Fatalf("hold: %v", rep.Err)
				}
				holds = append(holds, acked{rep.Hold.ID, escrow.Held})
			default:
				j := rng.IntN(len(holds))
				kind := []escrow.CommandKind{escrow.CmdConfirm, escrow.CmdRelease, escrow.CmdExtend}[rng.IntN(3)]
				rep := mustDo(t, r, escrow.Command{Kind: kind, HoldID: holds[j].id, TTL: 30 * time.Minute})
				if rep.Err == nil && holds[j].state == escrow.Held {
					holds[j].state = rep.Hold.State
				}
			}
		}
		clock.Add(int64(10 * time.Second))
		img := mem.CrashClone(vfs.CrashCloneCfg{}) // what was synced: every acknowledged write
		r.Close()
		mem = img
		r = open(mem)
		s := r.Stats()
		if s.HoldsResident > 4 {
			t.Fatalf("cycle %d: %d holds resident after start, want at most 4 (none is loaded)", cycle, s.HoldsResident)
		}
		held := 0
		for _, h := range holds {
			if h.state == escrow.Held {
				held++
			}
		}
		if s.ActiveHolds != uint64(held) {
			t.Fatalf("cycle %d: %d active holds counted at start, %d acknowledged HELD", cycle, s.ActiveHolds, held)
		}
	}
	defer r.Close()
	for _, h := range holds {
		rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdGet, HoldID: h.id})
		if rep.Err != nil || rep.Hold.State != h.state {
			t.Fatalf("hold %s acknowledged %s: read back %+v", h.id, h.state, rep)
		}
	}
	if rep := mustDo(t, r, first); rep.Err != nil || !rep.Replayed || rep.Hold.ID != holds[0].id {
		t.Fatalf("retry of the first hold after restarts: %+v", rep)
	}
	if s := r.Stats(); s.HoldCacheMisses == 0 || s.HoldCacheEvictions == 0 || s.HoldsResident > 4 {
		t.Fatalf("the cache was not used or not bounded: %+v", s)
	}
	// Past every deadline (extends add at most 30 min): the sweeper finds
	// every HELD hold through the store's index.
	clock.Add(int64(time.Hour))
	deadline := time.Now().Add(20 * time.Second)
	for {
		rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdStock, SKU: "A"})
		if rep.Stock.Held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d units still held an hour past every deadline", rep.Stock.Held)
		}
		time.Sleep(5 * time.Millisecond) // poll the condition
	}
	for _, h := range holds {
		rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdGet, HoldID: h.id})
		want := h.state
		if want == escrow.Held {
			want = escrow.Expired
		}
		if rep.Err != nil || rep.Hold.State != want {
			t.Fatalf("hold %s acknowledged %s: after the deadlines %+v", h.id, h.state, rep)
		}
	}
	if s := r.Stats(); s.ActiveHolds != 0 {
		t.Fatalf("%d active holds after every deadline", s.ActiveHolds)
	}
}

// TestHoldCacheNeedsRetention: hold_cache with a negative hold_retain (the
// store deletes what the node retires, and the cache retires nothing) is
// refused.
func TestHoldCacheNeedsRetention(t *testing.T) {
	_, err := Open(context.Background(), Config{Name: "eu", DataDir: "db", FS: vfs.NewMem(), Logger: quietLogger(), HoldCache: 4,
		HoldRetain: -1})
	if err == nil {
		t.Fatal("hold_cache with hold_retain -1 opened")
	}
}

// TestHoldCacheLoadSkipsHolds: with LazyHolds the store's Load returns no
// hold nor key and counts the HELD ones.
func TestHoldCacheLoadSkipsHolds(t *testing.T) {
	fs := vfs.NewMem()
	r, err := Open(context.Background(), Config{Name: "eu", DataDir: "db", FS: fs, Logger: quietLogger(), HoldCache: 2,
		Escrow: escrow.Config{DigestInterval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	restock(t, r, "A", 10)
	var ids []string
	for i := range 5 {
		rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}, IdemKey: fmt.Sprintf("k%d", i), IdemHash: 1})
		ids = append(ids, rep.Hold.ID)
	}
	mustDo(t, r, escrow.Command{Kind: escrow.CmdConfirm, HoldID: ids[0]})
	r.Close()
	s, err := OpenStore("db", StoreOptions{Region: "eu", FS: fs, LazyHolds: true, RetainTerminal: true, MemRetain: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Holds) != 0 || len(st.Idem) != 0 || st.HeldHolds != 4 || len(st.Rows) == 0 {
		t.Fatalf("lazy load: %d holds, %d keys, %d held counted, %d rows; want 0, 0, 4, some", len(st.Holds), len(st.Idem), st.HeldHolds, len(st.Rows))
	}
	h, ok, err := s.StoredHold(ids[0])
	if err != nil || !ok || h.State != escrow.Confirmed {
		t.Fatalf("StoredHold: %v %v %v", h.State, ok, err)
	}
	due, next, err := s.DueHolds(time.Now().Add(time.Hour), 2, nil)
	if err != nil || len(due) != 2 || next.IsZero() {
		t.Fatalf("DueHolds: %v, next %v, %v; want 2 entries and a next deadline", due, next, err)
	}
	if _, ok, err := s.StoredIdem("k3"); err != nil || !ok {
		t.Fatalf("StoredIdem: %v %v", ok, err)
	}
}
