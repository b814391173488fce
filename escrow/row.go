package escrow

import (
	"slices"
	"sort"
)

// Row is one region's bounded-counter row for one SKU. The region named in
// Region is its only writer; every field only grows, so two copies merge by
// pointwise max (see DESIGN.md, "State of one SKU").
type Row struct {
	SKU    string
	Region string
	// Seq is the writer's change sequence at the row's last change. A row with
	// a higher Seq is a later version of the same row.
	Seq      uint64
	Minted   uint64 // units that entered the system here (stock, restock)
	Reserved uint64 // units put into holds, cumulative
	Released uint64 // units returned from holds (release, expiry), cumulative
	Sold     uint64 // units of confirmed holds, cumulative
	Shrunk   uint64 // units written off here, cumulative
	// Sent holds the units given to other regions, cumulative, sorted by
	// region name with no duplicates and no zero counts.
	Sent []Transfer
}

// Transfer is a cumulative count of units sent to one region.
type Transfer struct {
	To  string
	Qty uint64
}

// Held returns the units of this row that sit in open holds.
func (r *Row) Held() uint64 { return r.Reserved - r.Released - r.Sold }

// SentTo returns the cumulative units this row has sent to region to.
func (r *Row) SentTo(to string) uint64 {
	for i := range r.Sent {
		if r.Sent[i].To == to {
			return r.Sent[i].Qty
		}
	}
	return 0
}

// SentTotal returns the units this row has sent to all regions.
func (r *Row) SentTotal() uint64 {
	var t uint64
	for i := range r.Sent {
		t += r.Sent[i].Qty
	}
	return t
}

// addSent increases the cumulative count sent to region to by qty.
func (r *Row) addSent(to string, qty uint64) {
	i := sort.Search(len(r.Sent), func(i int) bool { return r.Sent[i].To >= to })
	if i < len(r.Sent) && r.Sent[i].To == to {
		r.Sent[i].Qty += qty
		return
	}
	r.Sent = append(r.Sent, Transfer{})
	copy(r.Sent[i+1:], r.Sent[i:])
	r.Sent[i] = Transfer{To: to, Qty: qty}
}

// Clone returns a deep copy of r.
func (r Row) Clone() Row {
	if r.Sent != nil {
		r.Sent = append([]Transfer(nil), r.Sent...)
	}
	return r
}

// cloneInto makes *dst a clone of r (Clone), field by field: a Row
// appended as a value (104 bytes, three pointer words) went through the
// bulk write barrier while the collector runs, as the whole-value writes
// of holds and events did (see holdRec.fillHold). A reference field is
// written only when it differs; every field is written, so dst may hold
// anything before.
func (r *Row) cloneInto(dst *Row) {
	setRef(&dst.SKU, r.SKU)
	setRef(&dst.Region, r.Region)
	dst.Seq, dst.Minted, dst.Reserved, dst.Released, dst.Sold, dst.Shrunk = r.Seq, r.Minted, r.Reserved, r.Released, r.Sold, r.Shrunk
	if r.Sent != nil {
		dst.Sent = append([]Transfer(nil), r.Sent...)
	} else {
		clearSlice(&dst.Sent)
	}
}

// Merge folds other into r by pointwise max and reports whether r changed.
// Merge is commutative, associative and idempotent; rows of different SKUs
// or writers are never merged.
func (r *Row) Merge(other *Row) bool {
	if r.SKU != other.SKU || r.Region != other.Region {
		panic("escrow: merge of different rows " + r.Region + "/" + r.SKU + " and " + other.Region + "/" + other.SKU)
	}
	changed := false
	maxInto := func(dst *uint64, v uint64) {
		if v > *dst {
			*dst = v
			changed = true
		}
	}
	maxInto(&r.Seq, other.Seq)
	maxInto(&r.Minted, other.Minted)
	maxInto(&r.Reserved, other.Reserved)
	maxInto(&r.Released, other.Released)
	maxInto(&r.Sold, other.Sold)
	maxInto(&r.Shrunk, other.Shrunk)
	for _, t := range other.Sent {
		if cur := r.SentTo(t.To); t.Qty > cur {
			r.addSent(t.To, t.Qty-cur)
			changed = true
		}
	}
	return changed
}

// Equal reports whether two rows hold the same counters.
func (r *Row) Equal(o *Row) bool {
	if r.SKU != o.SKU || r.Region != o.Region || r.Seq != o.Seq || r.Minted != o.Minted ||
		r.Reserved != o.Reserved || r.Released != o.Released || r.Sold != o.Sold ||
		r.Shrunk != o.Shrunk || len(r.Sent) != len(o.Sent) {
		return false
	}
	for i := range r.Sent {
		if r.Sent[i] != o.Sent[i] {
			return false
		}
	}
	return true
}

// View is one region's view of all rows of one SKU, keyed by writer region.
type View map[string]*Row

// Received returns the units all rows in the view have sent to region r.
func (v View) Received(r string) uint64 {
	var t uint64
	for _, row := range v {
		t += row.SentTo(r)
	}
	return t
}

// Available returns available(r) over this view:
// Minted + received − ΣSent − Reserved + Released − Shrunk. It is signed so
// that a broken view shows up as a negative number instead of wrapping.
func (v View) Available(r string) int64 {
	row := v[r]
	recv := int64(v.Received(r))
	if row == nil {
		return recv
	}
	return int64(row.Minted) + recv - int64(row.SentTotal()) - int64(row.Reserved) +
		int64(row.Released) - int64(row.Shrunk)
}

// Totals are sums over a merged view, used by the conservation check.
type Totals struct {
	Minted, Available, Held, Sold, Shrunk int64
}

// Totals sums the view. Over a merged view (every row at its latest
// version) conservation requires Available+Held+Sold+Shrunk == Minted.
//
// A region that received units but never wrote a row of its own (a borrow
// whose hold was no longer waiting, advice) still has them available:
// Totals counts every region the view names, as a writer or as a receiver.
func (v View) Totals() Totals {
	var t Totals
	for r, row := range v {
		t.Minted += int64(row.Minted)
		t.Available += v.Available(r)
		t.Held += int64(row.Held())
		t.Sold += int64(row.Sold)
		t.Shrunk += int64(row.Shrunk)
	}
	for _, r := range v.receiversWithoutRow() {
		t.Available += v.Available(r)
	}
	return t
}

// receiversWithoutRow lists regions that rows of v send to but that have no
// row in v, sorted.
func (v View) receiversWithoutRow() []string {
	var out []string
	for _, row := range v {
		for _, tr := range row.Sent {
			if v[tr.To] == nil && !slices.Contains(out, tr.To) {
				out = append(out, tr.To)
			}
		}
	}
	sort.Strings(out)
	return out
}

// CheckConservation returns an error unless the view conserves units and no
// region's available count is negative.
func (v View) CheckConservation() error {
	for r := range v {
		if a := v.Available(r); a < 0 {
			return errorf(CodeInvariant, "available(%s) = %d < 0", r, a)
		}
	}
	for _, r := range v.receiversWithoutRow() {
		if a := v.Available(r); a < 0 {
			return errorf(CodeInvariant, "available(%s) = %d < 0", r, a)
		}
	}
	t := v.Totals()
	if t.Available+t.Held+t.Sold+t.Shrunk != t.Minted {
		return errorf(CodeInvariant, "conservation: available %d + held %d + sold %d + shrunk %d != minted %d",
			t.Available, t.Held, t.Sold, t.Shrunk, t.Minted)
	}
	return nil
}
