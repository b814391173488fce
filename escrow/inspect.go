package escrow

import (
	"slices"
	"sort"
	"strings"
)

// This file holds the node's read-only accessors: copies of its view, rows
// and holds for the runtime's HTTP handlers, the simulator and tests. None
// of them changes the node.

// View returns a copy of this node's view of one SKU (nil if unknown).
func (n *Node) View(sku string) View {
	s, cold := n.peekRows(sku)
	if s == nil {
		if len(cold) == 0 {
			return nil
		}
		v := make(View, len(cold))
		for i := range cold {
			v[cold[i].Region] = &cold[i]
		}
		return v
	}
	v := make(View, len(s.list))
	for _, rec := range s.list {
		c := rec.Row.Clone()
		v[rec.Region] = &c
	}
	return v
}

// Rows returns copies of every row this node holds, sorted by SKU and region.
func (n *Node) Rows() []Row {
	var out []Row
	for _, s := range n.skus {
		for _, rec := range s.list {
			out = append(out, rec.Row.Clone())
		}
	}
	n.scanCold(func(r *Row) { out = append(out, r.Clone()) })
	slices.SortFunc(out, func(a, b Row) int {
		if c := strings.Compare(a.SKU, b.SKU); c != 0 {
			return c
		}
		return strings.Compare(a.Region, b.Region)
	})
	return out
}

// ForEachRow calls f for every row this node holds, in no order; f must
// not keep r (Rows copies them, sorted). With the bounded cache, the rows
// of SKUs not resident come from the row source (a full scan).
func (n *Node) ForEachRow(f func(r *Row)) {
	for i := 0; i < n.skuTab.len(); i++ {
		for _, rec := range n.skuTab.at(i).list {
			f(&rec.Row)
		}
	}
	n.scanCold(f)
}

// RowSeq returns the Seq of region's row of sku as this node holds it, and
// whether it holds one: a check of one row without copying them all.
func (n *Node) RowSeq(sku, region string) (uint64, bool) {
	if r := n.rowOf(sku, region); r != nil {
		return r.Seq, true
	}
	return 0, false
}

// SentTo returns the units this node's copy of the row of (sku, from) says
// from sent to region to (0 without a copy), copying nothing.
func (n *Node) SentTo(sku, from, to string) uint64 {
	if r := n.rowOf(sku, from); r != nil {
		return r.SentTo(to)
	}
	return 0
}

// rowOf is the node's row of (sku, region), nil if it has none.
func (n *Node) rowOf(sku, region string) *Row {
	s, cold := n.peekRows(sku)
	if s == nil {
		for i := range cold {
			if cold[i].Region == region {
				return &cold[i]
			}
		}
		return nil
	}
	for _, rec := range s.list {
		if rec.Region == region {
			return &rec.Row
		}
	}
	return nil
}

// SKUs returns the SKUs this node knows, in the order it learned them
// (with the bounded cache: the resident ones in slot order, then the
// others the row source has, in SKU order).
func (n *Node) SKUs() []string {
	out := make([]string, 0, n.skuTab.len())
	for i := range n.skuTab.len() {
		if s := n.skuTab.at(i); s.sku != "" {
			out = append(out, s.sku)
		}
	}
	last := ""
	n.scanCold(func(r *Row) {
		if r.SKU != last {
			out = append(out, r.SKU)
			last = r.SKU
		}
	})
	return out
}

// Hold returns a copy of a hold owned by this node.
// With the hold cache, a hold that is not resident is read from the
// source (not made resident); a failure stops the node (Err).
func (n *Node) Hold(id string) (Hold, bool) {
	return n.peekHold(id)
}

// ForEachHold calls f for every hold this node keeps, in no order. With
// the hold cache: the resident holds only (the rest are the source's).
func (n *Node) ForEachHold(f func(h *Hold)) {
	for _, h := range n.holds.all() {
		hv := h.hold()
		f(&hv)
	}
}

// Available returns available(self) of sku as this node sees it.
func (n *Node) Available(sku string) uint64 {
	s := n.peek(sku)
	if s == nil {
		return 0
	}
	return n.available(s)
}

// Peers returns the regions this node has heard of, sorted.
func (n *Node) Peers() []string {
	out := make([]string, 0, len(n.peers))
	for r := range n.peers {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// PeerSeq returns the last contiguous sequence received from region r.
func (n *Node) PeerSeq(r string) uint64 {
	if p := n.peers[r]; p != nil {
		return p.seen
	}
	return 0
}
