package sim

// bitflip: bits flipped in a region's stored tables while it is down.
//
// An episode crashes the region and, before its restart, flips 1-3 bits at
// random offsets of one of its sstables (its live data: pebble's open
// flushes the replayed log into one, so a region has tables once it has
// restarted; until then the episode waits for a later crash). Every block
// of a table carries a checksum that pebble verifies when it reads it, and
// the region's open reads every block of state (region.Store.Load), so a
// flip in state is a refused start ("refusing to start": corrupt store).
// What an operator does then (docs/operations.md, "A corrupt store"): the
// region comes back on an empty directory under its name, the wiped case,
// which the store fence catches. A flip that the open does not read (a
// block of the event log, an obsolete file) leaves the region starting
// with exactly what it synced: store_mismatches checks that no flipped row
// or hold is ever served.
//
// The WAL is not flipped: a flip in its last record is indistinguishable
// from a torn write, and pebble drops that record as torn: a synced batch
// lost, which is the fsynclie fault's case (a flip earlier in the WAL is
// detected by the read-ahead and refused, as a table's is).

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
)

const fBitflip faultKind = fFsyncLie + 1

func init() { namedSpanKind[fBitflip] = "bitflip" }

// Store-back event kinds (evStoreBack's n).
const (
	sbRestore = iota // restore a store image once a peer saw beyond it
	sbBitflip        // crash a region so that its tables get flipped
)

// genBitflip draws the run's bitflip episode.
func genBitflip(sec func(a, b float64) int64, x int, heal int64) []fault {
	h := float64(heal) / 1e9
	at := sec(h/5, h*3/4)
	return []fault{{at: at, end: at, kind: fBitflip, node: x, desc: fmt.Sprintf("bitflip r%d", x)}}
}

// onStoreBackEvent runs an evStoreBack event.
func (w *world) onStoreBackEvent(ep *endpoint, n int32) {
	if n == sbBitflip {
		w.bitflipCrash(ep)
		return
	}
	w.restoreWhenSeen(ep)
}

// bitflipCrash crashes the region so that its restart finds its tables
// flipped (retried while it is down; given up at heal).
func (w *world) bitflipCrash(ep *endpoint) {
	sb := &ep.rt.sb
	if !sb.flip {
		return
	}
	if w.now >= w.healAt {
		sb.flip = false
		w.res.StoreBackSkipped++
		return
	}
	if ep.down {
		w.q.push(event{at: w.at(500 * time.Millisecond), kind: evStoreBack, node: int32(ep.idx), n: sbBitflip})
		return
	}
	w.crash(ep)
	w.q.push(event{at: w.at(time.Second), kind: evRestart, node: int32(ep.idx), inc: ep.inc})
}

// flipStore flips the bits of a pending episode in the down region's
// tables, before its store is opened.
func (w *world) flipStore(ep *endpoint) {
	rt := ep.rt
	sb := &rt.sb
	if !sb.flip {
		return
	}
	names, _ := rt.mem.List("db")
	var tables []string
	for _, n := range names {
		if strings.HasSuffix(n, ".sst") {
			tables = append(tables, n)
		}
	}
	if len(tables) == 0 {
		// No table yet: this restart flushes the log into one; the
		// episode crashes the region again a little later.
		w.q.push(event{at: w.at(5*time.Second + time.Duration(rt.rng.Int64N(int64(15*time.Second)))),
			kind: evStoreBack, node: int32(ep.idx), n: sbBitflip})
		return
	}
	sort.Strings(tables)
	name := rt.mem.PathJoin("db", tables[rt.rng.IntN(len(tables))])
	if err := flipBits(rt.mem, name, 1+rt.rng.IntN(3), rt.rng.Int64N, rt.rng.IntN); err != nil {
		w.fail("bitflip of %s's %s: %v", ep.name, name, err)
		return
	}
	sb.flip, sb.flipped, sb.flippedOnce = false, true, true
	w.countFault(FaultBitflip, 1)
}

// flipBits flips n bits of file name at random offsets, synced.
func flipBits(fs *vfs.MemFS, name string, n int, off func(int64) int64, bit func(int) int) error {
	f, err := fs.OpenReadWrite(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return fmt.Errorf("stat: size %d, %v", st.Size(), err)
	}
	for i := 0; i < n; i++ {
		var b [1]byte
		at := off(st.Size())
		if _, err := f.ReadAt(b[:], at); err != nil {
			return err
		}
		b[0] ^= 1 << bit(8)
		if _, err := f.WriteAt(b[:], at); err != nil {
			return err
		}
	}
	return f.Sync()
}

// bitflipOpened classifies the open of a store whose tables were flipped:
// a refused open (any error) is a refused start for corruption, after which
// the region comes back on an empty directory (true: the boot is over, the
// region stays down until then); an open that succeeded must serve exactly
// what was synced (store_mismatches, checked by the boot). A flip the open
// did not read may be found later, when a compaction reads its block:
// pebble reports the corruption (region.Store keeps it as the cause of its
// failure), the store fails, and the next open or recovery refuses on it;
// an open refused for a corruption of a store flipped before is that
// (bitflip_late), with the same end. Any other refused open is an error.
func (w *world) bitflipOpened(ep *endpoint, err error) bool {
	sb := &ep.rt.sb
	switch {
	case sb.flipped:
		sb.flipped = false
		if err == nil {
			w.res.BitflipUnread++
			return false
		}
		w.res.BitflipRefused++
	case err != nil && sb.flippedOnce && pebble.IsCorruptionError(err):
		w.res.BitflipLate++
	default:
		return false
	}
	w.corruptStart(ep)
	return true
}

// corruptStart: the region refused to start on a corrupt store; the
// operator brings it back on an empty directory a little later.
func (w *world) corruptStart(ep *endpoint) {
	S := w.orc.S
	w.setRegress(ep, &storeImage{dur: newDurable(), orcDur: make([]counters, S),
		orcSent: make([][]escrow.Transfer, S), orcLed: make([]ledger, S)})
	w.q.push(event{at: w.at(time.Second), kind: evRestart, node: int32(ep.idx), inc: ep.inc})
}
