package escrow

import "sort"

// Waiters are demand: the asks a region makes for the units its waitlist
// lacks (see waitlist.go).

// askForWaiters asks peers with known surplus for the units each SKU's
// queue lacks here, one round of asks per SKU in flight at a time.
func (n *Node) askForWaiters() {
	skus := make([]string, 0, len(n.wait.perSKU))
	for sku := range n.wait.perSKU {
		skus = append(skus, sku)
	}
	sort.Strings(skus)
	budget := n.cfg.MaxTopUpsPerTick
	for _, sku := range skus {
		sw := n.wait.perSKU[sku]
		k := 0
		for _, id := range sw.asks {
			if n.borrows[id] != nil {
				sw.asks[k] = id
				k++
			}
		}
		sw.asks = sw.asks[:k]
		if sw.entries == 0 {
			if k == 0 {
				delete(n.wait.perSKU, sku)
			}
			continue
		}
		s := n.lookup(sku)
		if k > 0 || s == nil || budget <= 0 || n.homed(sku) {
			continue
		}
		have := n.available(s)
		if have >= sw.units {
			continue
		}
		for _, p := range PlanWaitBorrow(sw.units-have, n.peerSurplus(s)) {
			budget--
			n.nextBorrowID()
			n.addBorrow(&borrowOut{sku: sku, to: p.Region, deadline: n.now.Add(n.cfg.RepairTimeout)})
			n.stats.BorrowsSent++
			n.stats.WaitAsks++
			sw.asks = append(sw.asks, n.borrowID)
			sw.askedAt = n.now
			n.send(Message{Type: MsgBorrowReq, From: n.cfg.Region, To: p.Region, ID: n.borrowID, SKU: sku, Qty: p.Qty, Urgent: true,
				Epoch: n.clockStamp()})
		}
	}
}
