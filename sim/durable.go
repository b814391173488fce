package sim

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// durable is a region's simulated disk: what survives a crash. A Ready's
// Persist lands here only when its synced write completes.
type durable struct {
	rows    map[[2]string]escrow.Row // (sku, writer)
	holds   map[string]escrow.Hold
	idem    map[string]escrow.IdemEntry
	seq     uint64
	peerSeq map[string]uint64
	waits   map[string]escrow.WaitEntry
	// evSeq is the sequence of the last event kept: each Persist's Events
	// are numbered on from it, so the sequence is gap-free across crashes
	// and only what was synced is numbered (the region's outbox).
	evSeq uint64
	// writers: every region with a row here, for SKURows.
	writers []string
}

func newDurable() *durable {
	return &durable{rows: map[[2]string]escrow.Row{}, holds: map[string]escrow.Hold{},
		idem: map[string]escrow.IdemEntry{}, peerSeq: map[string]uint64{},
		waits: map[string]escrow.WaitEntry{}}
}

// apply writes one Persist atomically. The slices of p are the node's
// copies (Ready clones them), so they are kept as they are.
func (d *durable) apply(p *escrow.Persist) {
	for i := range p.Rows {
		r := p.Rows[i]
		k := [2]string{r.SKU, r.Region}
		if _, ok := d.rows[k]; !ok && !slices.Contains(d.writers, r.Region) {
			d.writers = append(d.writers, r.Region)
		}
		d.rows[k] = r
	}
	for i := range p.Holds {
		d.holds[p.Holds[i].ID] = *p.Holds[i] // a value: the node reuses the copy after Advance
	}
	for _, id := range p.DeletedHolds {
		delete(d.holds, id)
	}
	for _, e := range p.Idem {
		d.idem[e.Key] = e
	}
	for _, k := range p.DeletedIdem {
		delete(d.idem, k)
	}
	for _, e := range p.Waits {
		d.waits[e.ID] = e
	}
	for _, id := range p.DeletedWaits {
		delete(d.waits, id)
	}
	d.seq = p.Seq
	d.evSeq += uint64(len(p.Events))
	for r, s := range p.PeerSeq {
		d.peerSeq[r] = s
	}
}

// state returns what a restarting node loads, in a fixed order so that the
// rebuilt node (its SKU order, its heaps) is the same on every run.
func (d *durable) state() *escrow.State {
	st := &escrow.State{Seq: d.seq, PeerSeq: make(map[string]uint64, len(d.peerSeq))}
	for k, r := range d.rows {
		_ = k
		st.Rows = append(st.Rows, r.Clone())
	}
	sort.Slice(st.Rows, func(i, j int) bool {
		if st.Rows[i].SKU != st.Rows[j].SKU {
			return st.Rows[i].SKU < st.Rows[j].SKU
		}
		return st.Rows[i].Region < st.Rows[j].Region
	})
	for _, h := range d.holds {
		st.Holds = append(st.Holds, h.Clone())
	}
	sort.Slice(st.Holds, func(i, j int) bool { return st.Holds[i].ID < st.Holds[j].ID })
	for _, e := range d.idem {
		st.Idem = append(st.Idem, e)
	}
	sort.Slice(st.Idem, func(i, j int) bool { return st.Idem[i].Key < st.Idem[j].Key })
	for r, s := range d.peerSeq {
		st.PeerSeq[r] = s
	}
	for _, e := range d.waits {
		st.Waits = append(st.Waits, e)
	}
	sort.Slice(st.Waits, func(i, j int) bool { return st.Waits[i].Seq < st.Waits[j].Seq })
	return st
}

// SKURows implements escrow.RowSource (--sku-cache): the rows of sku on
// this simulated disk.
func (d *durable) SKURows(sku string, dst []escrow.Row) ([]escrow.Row, error) {
	for _, w := range d.writers {
		if r, ok := d.rows[[2]string{sku, w}]; ok {
			dst = append(dst, r.Clone())
		}
	}
	return dst, nil
}

// ScanRows implements escrow.RowSource: every row, in SKU order.
func (d *durable) ScanRows(f func(r *escrow.Row) error) error { return d.ScanRowsFrom("", f) }

// ScanRowsFrom implements escrow.RowSource: the rows of the SKUs after
// `after`, in SKU order (a sort per call: simulated disks are small).
func (d *durable) ScanRowsFrom(after string, f func(r *escrow.Row) error) error {
	keys := make([][2]string, 0, len(d.rows))
	for k := range d.rows {
		if k[0] > after {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b [2]string) int {
		if a[0] != b[0] {
			return strings.Compare(a[0], b[0])
		}
		return strings.Compare(a[1], b[1])
	})
	for _, k := range keys {
		r := d.rows[k]
		if err := f(&r); err != nil {
			return err
		}
	}
	return nil
}

// held counts the HELD holds on this disk (State.HeldHolds, --hold-cache).
func (d *durable) held() uint64 { return escrow.HeldIn(d.holds) }

// newestHold is the greatest hold id on this disk (State.NewestHold).
func (d *durable) newestHold() string { return escrow.NewestIn(d.holds) }

// StoredHold implements escrow.HoldSource (--hold-cache).
func (d *durable) StoredHold(id string) (escrow.Hold, bool, error) {
	h, ok := d.holds[id]
	if !ok {
		return escrow.Hold{}, false, nil
	}
	return h.Clone(), true, nil
}

// StoredIdem implements escrow.HoldSource.
func (d *durable) StoredIdem(key string) (escrow.IdemEntry, bool, error) {
	e, ok := d.idem[key]
	return e, ok, nil
}

// DueHolds implements escrow.HoldSource: the disk's HELD holds as an
// exact expiry index would list them.
func (d *durable) DueHolds(t time.Time, max int, dst []escrow.Deadline) ([]escrow.Deadline, time.Time, error) {
	due, next := escrow.DueHoldsIn(d.holds, t, max, dst)
	return due, next, nil
}

// DueIdem implements escrow.HoldSource.
func (d *durable) DueIdem(t time.Time, max int, dst []escrow.Deadline) ([]escrow.Deadline, time.Time, error) {
	due, next := escrow.DueIdemIn(d.idem, t, max, dst)
	return due, next, nil
}
