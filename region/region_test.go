package region

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/holdfast-io/holdfast/escrow"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openMem opens a region "eu" on an in-memory storage.
func openMem(t *testing.T, st *memStorage, mod func(c *Config)) *Region {
	t.Helper()
	cfg := Config{Name: "eu", Storage: st, Logger: quietLogger()}
	if mod != nil {
		mod(&cfg)
	}
	r, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func mustDo(t *testing.T, r *Region, cmd escrow.Command) escrow.Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := r.Do(ctx, cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd.Kind, err)
	}
	return rep
}

func restock(t *testing.T, r *Region, sku string, qty uint64) {
	t.Helper()
	if rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdRestock, SKU: sku, Qty: qty}); rep.Err != nil {
		t.Fatalf("restock: %v", rep.Err)
	}
}

func TestDoLifecycleIsDurable(t *testing.T) {
	st := newMemStorage()
	r := openMem(t, st, nil)
	restock(t, r, "A", 3)
	rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 2}}})
	if rep.Err != nil || rep.Hold == nil || rep.Hold.State != escrow.Held {
		t.Fatalf("hold: %+v %v", rep, rep.Err)
	}
	id := rep.Hold.ID
	// The reply comes only after the write: storage has the hold now.
	if h, ok := st.hold(id); !ok || h.State != escrow.Held {
		t.Fatalf("hold %s not durable at reply time: %+v %v", id, h, ok)
	}
	rep = mustDo(t, r, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 2}}})
	if rep.Err == nil || rep.Err.Code != escrow.CodeInsufficientStock || rep.Err.Available != 1 {
		t.Fatalf("second hold: %+v %v", rep, rep.Err)
	}
	if rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdConfirm, HoldID: id}); rep.Err != nil || rep.Hold.State != escrow.Confirmed {
		t.Fatalf("confirm: %+v %v", rep, rep.Err)
	}
	if h, _ := st.hold(id); h.State != escrow.Confirmed {
		t.Fatalf("confirm not durable: %v", h.State)
	}
	if row := st.row("A", "eu"); row.Sold != 2 || row.Minted != 3 || row.Reserved != 2 {
		t.Fatalf("row: %+v", row)
	}
	if rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdRelease, HoldID: id}); rep.Err == nil || rep.Err.Code != escrow.CodeConflict {
		t.Fatalf("release after confirm: %+v", rep)
	}
}

func TestForeignHoldWithoutTransportIsUnreachable(t *testing.T) {
	r := openMem(t, newMemStorage(), nil)
	_, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdGet, HoldID: "us-0123456789abcdefgh"})
	if !errors.Is(err, ErrOwnerUnreachable) {
		t.Fatalf("err = %v, want ErrOwnerUnreachable", err)
	}
}

type fakeTransport struct {
	mu      sync.Mutex
	sent    []escrow.Message
	forward func(owner string, cmd escrow.Command) (escrow.Reply, error)
}

func (f *fakeTransport) Send(m []escrow.Message) {
	f.mu.Lock()
	f.sent = append(f.sent, m...)
	f.mu.Unlock()
}
func (f *fakeTransport) Forward(ctx context.Context, owner string, cmd escrow.Command) (escrow.Reply, error) {
	return f.forward(owner, cmd)
}

func TestForwardAndSend(t *testing.T) {
	st := newMemStorage()
	r := openMem(t, st, nil)
	ft := &fakeTransport{forward: func(owner string, cmd escrow.Command) (escrow.Reply, error) {
		if owner != "us" {
			return escrow.Reply{}, fmt.Errorf("wrong owner %s", owner)
		}
		return escrow.Reply{Kind: cmd.Kind, Hold: &escrow.Hold{ID: cmd.HoldID, State: escrow.Confirmed}}, nil
	}}
	r.AttachTransport(ft)
	rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdConfirm, HoldID: "us-0123456789abcdefgh"})
	if rep.Hold == nil || rep.Hold.State != escrow.Confirmed {
		t.Fatalf("forwarded confirm: %+v", rep)
	}
	ft.forward = func(string, escrow.Command) (escrow.Reply, error) { return escrow.Reply{}, errors.New("no responders") }
	if _, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdGet, HoldID: "us-0123456789abcdefgh"}); !errors.Is(err, ErrOwnerUnreachable) {
		t.Fatalf("err = %v", err)
	}
	// Execute never forwards.
	rep, err := r.Execute(context.Background(), escrow.Command{Kind: escrow.CmdGet, HoldID: "us-0123456789abcdefgh"})
	if err != nil || rep.Err == nil || rep.Err.Code != escrow.CodeNotOwner {
		t.Fatalf("execute foreign: %+v %v", rep, err)
	}
	restock(t, r, "A", 1)
	rep = mustDo(t, r, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}})
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if rep.Hold == nil {
		t.Fatalf("hold: %+v", rep)
	}
	rowsSent := false
	for _, m := range ft.sent {
		if m.Type == escrow.MsgRows {
			rowsSent = true
		}
	}
	if !rowsSent {
		t.Fatalf("no rows broadcast among %d messages", len(ft.sent))
	}
}

func TestStorageFailureFailsBatchAndRecovers(t *testing.T) {
	st := newMemStorage()
	r := openMem(t, st, nil)
	restock(t, r, "A", 10)
	st.setFailApply(1)
	st.mu.Lock()
	st.failLoad = 2 // the first reloads fail too: the loop backs off and retries
	st.mu.Unlock()
	_, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 4}}})
	if !errors.Is(err, ErrStorage) {
		t.Fatalf("err = %v, want ErrStorage", err)
	}
	eventually(t, 10*time.Second, "recovery", r.Ready)
	// The failed hold left nothing behind: all 10 units are there.
	var avail uint64
	if err := r.Inspect(context.Background(), func(n *escrow.Node) { avail = n.Available("A") }); err != nil {
		t.Fatal(err)
	}
	if avail != 10 {
		t.Fatalf("available after failed write = %d, want 10", avail)
	}
	rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 4}}})
	if rep.Err != nil {
		t.Fatal(rep.Err)
	}
}

func TestOverloadWhenQueueFull(t *testing.T) {
	r := openMem(t, newMemStorage(), func(c *Config) { c.QueueLen = 2 })
	restock(t, r, "A", 100)
	block := make(chan struct{})
	inspecting := make(chan struct{})
	go r.Inspect(context.Background(), func(*escrow.Node) { close(inspecting); <-block })
	<-inspecting
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}})
			errs <- err
		}()
	}
	eventually(t, 5*time.Second, "queue full", func() bool { return len(r.queue) == 2 })
	if _, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}}); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("err = %v, want ErrOverloaded", err)
	}
	close(block)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("queued request failed: %v", err)
		}
	}
}

func TestCloseDrainsAndRefuses(t *testing.T) {
	st := newMemStorage()
	r := openMem(t, st, nil)
	restock(t, r, "A", 1000)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var granted []string
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}})
			if err == nil && rep.Err == nil {
				mu.Lock()
				granted = append(granted, rep.Hold.ID)
				mu.Unlock()
			} else if err != nil && !errors.Is(err, ErrClosed) {
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for _, id := range granted {
		if _, ok := st.hold(id); !ok {
			t.Fatalf("acknowledged hold %s not in storage after close", id)
		}
	}
	if _, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdStock, SKU: "A"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

// Expiry under load: short holds expire within a second of their deadline
// while other traffic keeps the loop busy, and their units come back.
func TestExpiryUnderLoad(t *testing.T) {
	st := newMemStorage()
	r := openMem(t, st, nil)
	const short = 300
	restock(t, r, "S", short)
	restock(t, r, "L", 1_000_000)
	stop := make(chan struct{})
	var load sync.WaitGroup
	for i := 0; i < 8; i++ {
		load.Add(1)
		go func() {
			defer load.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r.Do(context.Background(), escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "L", Qty: 1}}})
			}
		}()
	}
	defer func() { close(stop); load.Wait() }()
	var ids []string
	var lastDeadline time.Time
	for i := 0; i < short; i++ {
		rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdHold, TTL: time.Second, Lines: []escrow.Line{{SKU: "S", Qty: 1}}})
		if rep.Err != nil {
			t.Fatal(rep.Err)
		}
		ids = append(ids, rep.Hold.ID)
		lastDeadline = rep.Hold.Expires
	}
	eventually(t, time.Until(lastDeadline)+time.Second, "short holds expired within 1s of their deadline", func() bool {
		return st.row("S", "eu").Released == short
	})
	for _, id := range ids {
		if h, _ := st.hold(id); h.State != escrow.Expired {
			t.Fatalf("hold %s is %v", id, h.State)
		}
	}
	if s := r.Stats(); s.ExpiredHolds < short {
		t.Fatalf("expired stat %d", s.ExpiredHolds)
	}
}

func TestIdempotencyAcrossRestart(t *testing.T) {
	st := newMemStorage()
	r := openMem(t, st, nil)
	restock(t, r, "A", 5)
	cmd := escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 2}}, IdemKey: "cart-42", IdemHash: 7}
	first := mustDo(t, r, cmd)
	if first.Err != nil {
		t.Fatal(first.Err)
	}
	r.Close()
	r2 := openMem(t, st, nil)
	again := mustDo(t, r2, cmd)
	if again.Err != nil || !again.Replayed || again.Hold.ID != first.Hold.ID {
		t.Fatalf("replay after restart: %+v %v", again, again.Err)
	}
	cmd.IdemHash = 8
	if rep := mustDo(t, r2, cmd); rep.Err == nil || rep.Err.Code != escrow.CodeIdempotencyReuse {
		t.Fatalf("reuse with another body: %+v", rep)
	}
	var avail uint64
	r2.Inspect(context.Background(), func(n *escrow.Node) { avail = n.Available("A") })
	if avail != 3 {
		t.Fatalf("available = %d, want 3 (one hold of 2)", avail)
	}
}

func TestOpenRefusesCorruptState(t *testing.T) {
	st := newMemStorage()
	// A stored own row that gives more than it has: available < 0.
	st.model.rows["A\x00eu"] = escrow.Row{SKU: "A", Region: "eu", Minted: 1, Reserved: 5, Seq: 1}
	st.model.seq = 1
	_, err := Open(context.Background(), Config{Name: "eu", Storage: st, Logger: quietLogger()})
	if err == nil {
		t.Fatal("Open accepted a store with available < 0")
	}
	t.Logf("refused as expected: %v", err)
}

// A failing disk: requests fail with ErrStorage while it fails, the region
// is not ready, nothing acknowledged is lost, and it recovers by itself
// once the disk works again.
func TestFailingDiskRecovers(t *testing.T) {
	for _, fault := range []string{"wal-fsync", "disk-dead"} {
		t.Run(fault, func(t *testing.T) {
			var on atomic.Bool
			fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
				if !on.Load() {
					return nil
				}
				isSync := op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo
				if (fault == "wal-fsync" && isWALPath(op.Path) && isSync) ||
					(fault == "disk-dead" && op.Kind.ReadOrWrite() == errorfs.OpIsWrite) {
					return errorfs.ErrInjected
				}
				return nil
			}))
			r, err := Open(context.Background(), Config{Name: "eu", DataDir: "data", FS: fs, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			restock(t, r, "A", 100)
			var acked []string
			for i := 0; i < 5; i++ {
				acked = append(acked, mustDo(t, r, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}}).Hold.ID)
			}
			on.Store(true)
			_, err = r.Do(context.Background(), escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}})
			if !errors.Is(err, ErrStorage) {
				t.Fatalf("hold on a failing disk: %v, want ErrStorage", err)
			}
			// (Ready may already be true again: reopening can succeed while
			// only WAL syncs fail; the next commit then fails again.)
			// While the disk fails, requests fail fast (or fail their commit).
			for i := 0; i < 3; i++ {
				if _, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 1}); !errors.Is(err, ErrStorage) {
					t.Fatalf("restock on a failing disk: %v", err)
				}
			}
			on.Store(false)
			eventually(t, 15*time.Second, "recovery once the disk works", r.Ready)
			for _, id := range acked {
				rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdGet, HoldID: id})
				if rep.Err != nil || rep.Hold.State != escrow.Held {
					t.Fatalf("acknowledged hold %s after recovery: %+v %v", id, rep.Hold, rep.Err)
				}
			}
			if rep := mustDo(t, r, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}}); rep.Err != nil {
				t.Fatalf("hold after recovery: %v", rep.Err)
			}
			var v escrow.View
			r.Inspect(context.Background(), func(n *escrow.Node) { v = n.View("A") })
			// A failed commit is not acknowledged, but its batch may survive
			// (it reached the WAL; only the sync failed): acknowledged
			// changes, plus at most the failed ones.
			if row := v["eu"]; row.Minted < 100 || row.Minted > 103 || row.Held() < 6 || row.Held() > 7 {
				t.Fatalf("row after recovery: %+v", row)
			}
		})
	}
}

func TestMetricsWithStore(t *testing.T) {
	r, err := Open(context.Background(), Config{Name: "eu", DataDir: t.TempDir(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	restock(t, r, "A", 10)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Do(context.Background(), escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}})
		}()
	}
	wg.Wait()
	mfs, err := r.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				got[mf.GetName()] += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[mf.GetName()] += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[mf.GetName()] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		"holdfast_holds_total": 20, "holdfast_hold_latency_seconds": 20, "holdfast_commit_batch_size": 1,
		"holdfast_fsync_seconds": 1, "holdfast_active_holds": 10, "holdfast_pebble_wal_files": 1,
		"holdfast_pebble_wal_bytes_in_total": 1, "holdfast_ready": 1,
	}
	if testDefaultWAL == WALOwn {
		// Pebble's WAL is off: the own log's metrics move instead.
		delete(want, "holdfast_pebble_wal_bytes_in_total")
		want["holdfast_wal_bytes_total"], want["holdfast_wal_syncs_total"], want["holdfast_wal_files"] = 1, 1, 1
	}
	for name, min := range want {
		if got[name] < min {
			t.Errorf("%s = %v, want >= %v", name, got[name], min)
		}
	}
	if _, ok := got["holdfast_wal_deferred_flushes_total"]; testDefaultWAL == WALOwn && !ok {
		t.Error("holdfast_wal_deferred_flushes_total is not exported")
	}
	// The block cache may be empty while every write is in the memtable:
	// the gauge is exported, within the configured size (64 MiB).
	if v, ok := got["holdfast_pebble_block_cache_bytes"]; !ok || v < 0 || v > 64<<20 {
		t.Errorf("holdfast_pebble_block_cache_bytes = %v (exported: %v), want 0..64 MiB", v, ok)
	}
}

// Group commit: while one batch is being written, the next one collects
// every request that arrives, so concurrent callers share writes.
func TestGroupCommitSharesWrites(t *testing.T) {
	st := newMemStorage()
	st.delay = 2 * time.Millisecond
	r := openMem(t, st, nil)
	restock(t, r, "A", 100_000)
	st.mu.Lock()
	before := st.applies
	st.mu.Unlock()
	const callers, each = 64, 20
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if rep, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}}); err != nil || rep.Err != nil {
					t.Errorf("hold: %v %v", err, rep.Err)
					return
				}
			}
		}()
	}
	wg.Wait()
	st.mu.Lock()
	writes := st.applies - before
	st.mu.Unlock()
	// Ticks (expiry, digests) may add a few writes of their own.
	t.Logf("%d holds in %d writes (%.1f per write)", callers*each, writes, float64(callers*each)/float64(writes))
	if writes > callers*each/8 {
		t.Fatalf("%d holds took %d writes: no group commit", callers*each, writes)
	}
}

// wedgedStorage fails its writes and cannot be reopened, like a Store after
// a Pebble panic.
type wedgedStorage struct{ *memStorage }

func (w wedgedStorage) Reopen() error { return ErrStoreWedged }

func TestWedgedStoreIsFatal(t *testing.T) {
	st := newMemStorage()
	r, err := Open(context.Background(), Config{Name: "eu", Storage: wedgedStorage{st}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	st.setFailApply(1 << 30)
	if _, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 1}); !errors.Is(err, ErrStorage) {
		t.Fatalf("err = %v", err)
	}
	select {
	case <-r.Fatal():
	case <-time.After(10 * time.Second):
		t.Fatal("a wedged store did not make the region fatal")
	}
	if !errors.Is(r.FatalErr(), ErrStoreWedged) || r.Ready() {
		t.Fatalf("fatal err %v, ready %v", r.FatalErr(), r.Ready())
	}
}

// A store with a corrupt record is refused at Open, with a reason; and a
// store of another region too.
func TestOpenRefusesCorruptStore(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(context.Background(), Config{Name: "eu", DataDir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	restock(t, r, "A", 3)
	id := mustDo(t, r, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}}).Hold.ID
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), Config{Name: "us", DataDir: dir, Logger: quietLogger()}); err == nil {
		t.Fatal("region us opened the store of eu")
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(appendHoldKey(nil, id), []byte("garbage"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(context.Background(), Config{Name: "eu", DataDir: dir, Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "refusing to start") || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Open of a corrupt store: %v", err)
	}
	t.Logf("refused: %v", err)
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// durableCheckTransport fails the test if it is handed a rows message or a
// hold event before the change it carries is in storage.
type durableCheckTransport struct {
	t     *testing.T
	st    *memStorage
	mu    sync.Mutex
	sends int
}

func (d *durableCheckTransport) Send(msgs []escrow.Message) {
	d.st.mu.Lock()
	seq := d.st.model.seq
	d.st.mu.Unlock()
	for _, m := range msgs {
		if m.Type == escrow.MsgRows && m.Seq > seq {
			d.t.Errorf("rows up to seq %d sent while storage has %d", m.Seq, seq)
		}
	}
	d.mu.Lock()
	d.sends++
	d.mu.Unlock()
}

func (d *durableCheckTransport) Forward(context.Context, string, escrow.Command) (escrow.Reply, error) {
	return escrow.Reply{}, errors.New("no peers")
}

func TestSendsOnlyAfterDurable(t *testing.T) {
	st := newMemStorage()
	st.delay = 200 * time.Microsecond
	r := openMem(t, st, nil)
	tr := &durableCheckTransport{t: t, st: st}
	r.AttachTransport(tr)
	restock(t, r, "A", 10_000)
	var wg sync.WaitGroup
	for c := 0; c < 16; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				rep, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}})
				if err != nil || rep.Err != nil {
					t.Errorf("hold: %v %v", err, rep.Err)
					return
				}
				if i%3 == 0 {
					r.Do(context.Background(), escrow.Command{Kind: escrow.CmdRelease, HoldID: rep.Hold.ID})
				}
			}
		}()
	}
	// A peer's messages are stepped too (rows of another region).
	for i := 1; i <= 20; i++ {
		r.Deliver(escrow.Message{Type: escrow.MsgRows, From: "us", PrevSeq: uint64(i - 1), Seq: uint64(i),
			Rows: []escrow.Row{{SKU: "B", Region: "us", Minted: uint64(i), Seq: uint64(i)}}})
	}
	wg.Wait()
	eventually(t, 5*time.Second, "peer rows merged and persisted", func() bool {
		return st.row("B", "us").Minted == 20
	})
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.sends == 0 {
		t.Fatal("nothing was sent")
	}
}
