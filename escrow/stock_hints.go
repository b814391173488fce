package escrow

// Stock hints: whom to ask when the view says nobody has stock.
//
// A node computes a peer's available units from its own copies of every
// row: the peer's row, and what the other regions' rows say they sent it.
// Copies lag, but the owner of a row repairs them, so the view catches up.
// Not when the owner's store went back in time: a region that refuses writes
// (fenced, or on probation) serves no repair (fence.go), and
// peers keep the copies of its rows they happened to receive before the
// loss, which may differ for good. A peer whose copy of the fenced region's
// row is missing a transfer to region B then counts B's units short, maybe
// at zero, and never asks B to lend: the units are stranded for it, while
// B's own digest says it has them.
//
// So each node keeps, per (SKU, peer), the available count the peer's last
// digest reported when it was above what the view computes for that peer
// (a hint), and, while some peer is fenced for good, adds the
// hinted peers to those it may ask (borrowFor): their deadlines stretch to
// their round trips like any other's (stretchDeadline). A digest that no
// longer shows more than the view, or an answer that lends less than asked,
// drops the hint. The map is bounded (maxStockHints): when full, new hints
// are not kept (existing ones are still updated and dropped), so it never
// depends on map order. Without a fenced peer hints are neither
// kept nor used: the runtime without store faults behaves as before.

// maxStockHints bounds the hints a node keeps.
const maxStockHints = 4096

type hintKey struct{ sku, region string }

// viewMayLag reports whether some peer's rows may lag here for good: a
// peer fenced for good (its digest says so) repairs nothing. (A digest
// behind rows we hold is no evidence: a late copy is one too.)
func (n *Node) viewMayLag() bool {
	for _, p := range n.peers {
		if p.fenced {
			return true
		}
	}
	return false
}

// noteStockHints records the hints of digest m (after the fence's part of
// it has run, so that the sender's fenced and behind flags are current).
func (n *Node) noteStockHints(m *Message) {
	if !n.viewMayLag() {
		if len(n.hints) > 0 {
			clear(n.hints)
		}
		return
	}
	if p := n.peers[m.From]; p != nil && (p.fenced || p.behind) {
		return // it lends nothing (fenced), or its digest is a late copy
	}
	for i := range m.Digest {
		d := &m.Digest[i]
		s := n.lookup(d.SKU)
		if s == nil {
			continue
		}
		k := hintKey{sku: d.SKU, region: m.From}
		if d.Available == 0 || int64(d.Available) <= s.availableOf(m.From) {
			delete(n.hints, k)
			continue
		}
		if _, ok := n.hints[k]; !ok && len(n.hints) >= maxStockHints {
			n.stats.StockHintsDropped++
			continue
		}
		if n.hints == nil {
			n.hints = make(map[hintKey]uint64)
		}
		n.hints[k] = d.Available
	}
}

// addHinted returns peers (the view's surplus of s) with the hinted peers
// of sku added, or raised to their hint, while the view may lag.
func (n *Node) addHinted(sku string, peers []PeerStock) []PeerStock {
	if len(n.hints) == 0 || n.cfg.bugs.NoStockHints || !n.viewMayLag() {
		return peers
	}
	s := n.lookup(sku)
	if s == nil {
		return peers
	}
	for _, rec := range s.list {
		r := rec.Region
		h := n.hints[hintKey{sku: sku, region: r}]
		if h == 0 || r == n.cfg.Region || !n.member(r) || !n.worthAsking(r) {
			continue
		}
		found := false
		for i := range peers {
			if peers[i].Region == r {
				found = true
				if peers[i].Available < h {
					peers[i].Available = h
					n.stats.StockHintsUsed++
				}
				break
			}
		}
		if !found {
			peers = append(peers, PeerStock{Region: r, Available: h})
			n.stats.StockHintsUsed++
		}
	}
	return peers
}

// dropHint forgets the hint of (sku, peer): the peer lent less than asked.
func (n *Node) dropHint(sku, peer string) {
	if len(n.hints) > 0 {
		delete(n.hints, hintKey{sku: sku, region: peer})
	}
}
