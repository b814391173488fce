package escrow

// Digests are chosen by change and demand. A digest carries at most
// MaxDigestSKUs SKUs; with a catalogue of millions, a plain round robin
// would show the rebalancer a given SKU once every few hours. Instead:
//
//   - a SKU is in demand when a shopper asked for it, and stays so while
//     its demand is at least hotDemand units/s; it is changed when its own
//     row or a peer's row of it changed. Each has a FIFO queue, so that
//     when more SKUs are hot than a digest carries they take turns;
//   - each digest takes the SKUs in demand first, then the changed ones (a
//     bulk import of millions of rows does not push the active SKUs out);
//   - what room is left goes to a round robin over the whole catalogue, so
//     that cold SKUs are still seen, rarely.
//
// So while at most MaxDigestSKUs SKUs are in demand, an active SKU is in
// every digest: the rebalancer's view of it is one interval old at most,
// however large the catalogue (TestDigestActiveSKUAmongIdle). The work,
// the bytes and the queues of digests are bounded by MaxDigestSKUs, not by
// the catalogue.

// hotDemand is the demand, in units/s, under which a SKU stops being in
// demand: one unit asked for stays in demand for about 36s with the default
// DemandTau of 30s.
const hotDemand = 0.01

// maxHotFactor bounds each queue at maxHotFactor*MaxDigestSKUs SKUs: a
// bulk import that changes millions of rows does not grow them with the
// catalogue; the SKUs it leaves out are seen by the round robin.
const maxHotFactor = 64

// The bits of skuState.hot: which queue s is in.
const (
	inDemandQ uint8 = 1 << iota
	inChangedQ
)

// markDemand queues s as in demand for the next digest, once.
func (n *Node) markDemand(s *skuState) {
	if n.cache.on && n.cfg.DigestInterval < 0 {
		return // no digest would ever drain the queue: its entries would outlive the SKUs the cache drops
	}
	if s == nil || s.hot&inDemandQ != 0 || len(n.hotDemand) >= maxHotFactor*n.cfg.MaxDigestSKUs {
		return
	}
	s.hot |= inDemandQ
	n.hotDemand = append(n.hotDemand, s)
}

// markChanged queues s as changed for the next digest, once.
func (n *Node) markChanged(s *skuState) {
	if n.cache.on && n.cfg.DigestInterval < 0 {
		return
	}
	if s == nil || s.hot&(inChangedQ|inDemandQ) != 0 || len(n.hotChanged) >= maxHotFactor*n.cfg.MaxDigestSKUs {
		return
	}
	s.hot |= inChangedQ
	n.hotChanged = append(n.hotChanged, s)
}

// popHot moves up to k SKUs from the head of q into the digest and returns
// how many it took off q.
func (n *Node) popHot(m *Message, q *[]*skuState, bit uint8, k int) int {
	take := min(len(*q), k)
	n.hotTaken = append(n.hotTaken[:0], (*q)[:take]...)
	rest := copy(*q, (*q)[take:])
	clear((*q)[rest:])
	*q = (*q)[:rest]
	for _, s := range n.hotTaken {
		s.hot &^= bit
		if s.digested != n.digests && s.sku != "" { // "": dropped by the SKU cache
			n.addDigest(m, s)
		}
	}
	return take
}

// digestSKUs appends the SKUs of the next digest to m: in demand first,
// then changed, then the round robin.
func (n *Node) digestSKUs(m *Message) {
	n.digests++
	budget := n.cfg.MaxDigestSKUs
	n.popHot(m, &n.hotDemand, inDemandQ, budget)
	// Those still in demand go back at the tail.
	for _, s := range n.hotTaken {
		if n.demandNow(s) >= hotDemand {
			n.markDemand(s)
		}
	}
	n.popHot(m, &n.hotChanged, inChangedQ, budget-len(m.Digest))
	clear(n.hotTaken)
	n.stats.DigestHotSKUs += uint64(len(m.Digest))
	// Round robin over the catalogue for the room left: at most that many
	// positions are looked at.
	k := min(n.skuTab.len(), budget-len(m.Digest))
	for i := 0; i < k; i++ {
		if n.digestNext >= n.skuTab.len() {
			n.digestNext = 0
		}
		s := n.skuTab.at(n.digestNext)
		n.digestNext++
		if s.sku == "" || s.digested == n.digests || (s.own == nil && s.demandAt == 0) {
			continue
		}
		n.addDigest(m, s)
	}
	n.stats.Digests++
	n.stats.DigestSKUs += uint64(len(m.Digest))
}

func (n *Node) addDigest(m *Message, s *skuState) {
	s.digested = n.digests
	d := SKUDigest{SKU: s.sku, Available: n.available(s), Rejected: s.reject,
		DemandMilli: uint64(n.demandNow(s) * 1000), Waiting: n.waitUnits(s.sku)}
	if s.own != nil {
		d.Held = s.own.Held()
	}
	m.Digest = append(m.Digest, d)
	n.stats.DigestBytes += uint64(digestEntryBytes(&d))
}

// digestEntryBytes is the size of d's entry in an encoded digest (wire.go),
// counting one byte for its waiting count even when the digest omits them.
func digestEntryBytes(d *SKUDigest) int {
	return uvarintLen(uint64(len(d.SKU))) + len(d.SKU) + uvarintLen(d.Available) + uvarintLen(d.Held) +
		uvarintLen(d.DemandMilli) + uvarintLen(d.Rejected) + uvarintLen(d.Waiting)
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
