package region

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestOwnWALCloseSyncsBuffer: a store failed by something other than its
// log (a row checkpoint's table, pebble's background error) drops its
// memtable at close, but a flush pebble begins once the log has detached
// its FlushBegin listener still writes that memtable to sstables, a batch
// whose record is only buffered (written ahead) included. The log's close
// therefore writes and fdatasyncs its buffer first (ownWAL.close); without
// that (planted: closeSkipsBufferSync, as before ffa1fe2) the batch is in
// pebble and not in the log, and the next open replays older records over
// it: Load refuses the store or returns a state that is neither the
// acknowledged one nor the one with the batch.
//
// The window is made certain: pebble's first flush is held at its first
// sstable (errorfs) while the batch is written ahead into the next
// memtable and that memtable is queued for flushing behind it; the flush
// is let go only once the log is closed (Store.testBeforePebbleClose),
// and pebble's close waits for the queued flush, which begins then.
func TestOwnWALCloseSyncsBuffer(t *testing.T) {
	if d := testOwnWALCloseSyncsBuffer(t, walBugs{}); d != "" {
		t.Fatalf("a batch written ahead, flushed by pebble while a failed store closed: %s", d)
	}
	t.Run("planted bug caught", func(t *testing.T) {
		d := testOwnWALCloseSyncsBuffer(t, walBugs{closeSkipsBufferSync: true})
		if d == "" {
			t.Fatal("planted bug closeSkipsBufferSync not caught")
		}
		t.Logf("caught: %.400s", d)
	})
}

// testOwnWALCloseSyncsBuffer runs the close of TestOwnWALCloseSyncsBuffer
// with bugs and returns how the store, reopened after the close and after
// a crash at its end, differs from both the acknowledged state and the
// state with the batch written ahead ("": it equals one of them).
func testOwnWALCloseSyncsBuffer(t *testing.T, bugs walBugs) string {
	mem := vfs.NewCrashableMem()
	var (
		armed    atomic.Bool
		creates  atomic.Int32
		held     = make(chan struct{}) // the first flush is at its first sstable
		release  = make(chan struct{}) // it may go on
		began    = make(chan struct{}) // the queued flush created its sstable
		beganOne sync.Once
		// firstDone is closed when the held flush has ended.
		firstDone atomic.Value
	)
	const wait = 30 * time.Second // a guard against a hang, never the synchronisation
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !armed.Load() || op.Kind != errorfs.OpCreate || !strings.HasSuffix(op.Path, ".sst") {
			return nil
		}
		if creates.Add(1) == 1 {
			close(held)
			select {
			case <-release:
			case <-time.After(wait):
				return fmt.Errorf("flush held at %s for %v: the close never let it go: %w", op.Path, wait, errorfs.ErrInjected)
			}
			return nil
		}
		// The held flush writes a table per prefix (store_tables.go):
		// a table created once it has ended is the queued flush's.
		if ch, _ := firstDone.Load().(<-chan struct{}); ch != nil {
			select {
			case <-ch:
				beganOne.Do(func() { close(began) })
			default:
			}
		}
		return nil
	}))
	opts := ownOpts(fs, t)
	opts.MemTableBytes = 4 << 20 // pebble flushes only when told to
	opts.WALFileBytes = 1 << 20  // no rotation: no checkpoint moves the rows
	opts.rowOverlayMax = 1 << 20 // no checkpoint: m/rowpos stays at the open
	opts.walBugs = bugs
	s := stOpenWith(t, "db", opts)
	m := newStModel()
	x, before := nextRowsAndHolds(t, s, newStGen(53, m), m)

	// Pebble's first flush: its FlushBegin syncs the log (every batch so
	// far is acknowledged anyway), then it is held at its first sstable.
	armed.Store(true)
	done, err := s.db.AsyncFlush()
	if err != nil {
		t.Fatal(err)
	}
	firstDone.Store(done)
	select {
	case <-held:
	case <-time.After(wait):
		t.Fatalf("pebble's flush created no sstable in %v", wait)
	}
	// The batch written ahead: its record is only buffered, its holds in
	// the next memtable, its rows in the overlay.
	if _, err := s.WriteAhead(x); err != nil {
		t.Fatal(err)
	}
	with := before.clone()
	with.apply(x)
	if pos, durable := s.wal.lastPos(), s.wal.durable.Load(); durable >= pos {
		t.Fatalf("the batch written ahead (position %d) is durable (%d) before the close", pos, durable)
	}
	// Its memtable is queued behind the held flush (which keeps the queued
	// one from beginning).
	if _, err := s.db.AsyncFlush(); err != nil {
		t.Fatal(err)
	}
	s.markFailed(errors.New("injected: a failure that is not the log's (a row checkpoint's table)"))
	var hookErr string
	s.testBeforePebbleClose = func() {
		// The log is closed and its listener detached: the held flush
		// ends, and the queued one begins before pebble's close would
		// keep it from starting.
		close(release)
		select {
		case <-began:
		case <-time.After(wait):
			hookErr = fmt.Sprintf("the queued flush did not begin in %v", wait)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close of the failed store: %v", err)
	}
	if hookErr != "" {
		t.Fatal(hookErr)
	}
	armed.Store(false)
	img := mem.CrashClone(vfs.CrashCloneCfg{})
	var diffs []string
	// The store as a reopen on the healthy disk finds it, then as a crash
	// right after the close leaves it: the acknowledged batches, with or
	// without the one written ahead (never answered), whole.
	for _, c := range []struct {
		name string
		fs   *vfs.MemFS
	}{{"reopen", mem}, {"crash after the close", img}} {
		o := ownOpts(nil, t)
		o.WALFileBytes, o.MemTableBytes, o.rowOverlayMax = opts.WALFileBytes, opts.MemTableBytes, opts.rowOverlayMax
		if d := ownCheckImage(t, c.fs, o, before, with); d != "" {
			diffs = append(diffs, c.name+": "+d)
		}
	}
	return strings.Join(diffs, "; ")
}
