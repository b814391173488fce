package sim

import "github.com/holdfast-io/holdfast/escrow"

// checkHoldClock runs, on every durable write of hold h (previous durable
// state prev, if seen), the checkers that a clock jump or a lost reply
// could break:
//
//   - clock_errors: a hold that ended (expired, released, confirmed) is
//     never held again, a hold once deleted is never written again, and no
//     change of a hold is dated before its creation (the granting node's
//     clock never runs backwards, whatever the runtime's clock does): a
//     jump cannot resurrect a hold or reorder its life.
//   - double_holds: an idempotency key creates one hold, wherever the
//     retry lands (gateway or the SKU's home).
func (o *oracle) checkHoldClock(ep *endpoint, h *escrow.Hold, prev escrow.HoldState, seen bool) {
	w := o.w
	switch {
	case seen && prev != escrow.Held && h.State == escrow.Held:
		w.res.ClockErrors++
		w.fail("clock_errors: hold %s at %s is held again after it was %s", h.ID, ep.name, prev)
	case o.deleted[h.ID]:
		w.res.ClockErrors++
		w.fail("clock_errors: hold %s at %s is written again after it was deleted", h.ID, ep.name)
	case h.Updated.Before(h.Created):
		w.res.ClockErrors++
		w.fail("clock_errors: hold %s at %s changed (%s) at %v, before it was created at %v", h.ID, ep.name,
			h.State, h.Updated.Sub(baseTime), h.Created.Sub(baseTime))
	}
	if seen || h.IdemKey == "" {
		return
	}
	if first, ok := o.byIdem[h.IdemKey]; ok && first != h.ID {
		w.res.DoubleHolds++
		w.fail("double_holds: idempotency key %s created hold %s after hold %s", h.IdemKey, h.ID, first)
		return
	}
	o.byIdem[h.IdemKey] = h.ID
}

// stepWatchingRows steps a message carrying rows and checks the checker
// row_regressions: the region's copy of every peer row the message
// carries goes only forward (runs with replay only: it copies views).
func (w *world) stepWatchingRows(ep *endpoint, m *escrow.Message) {
	type key struct{ sku, region string }
	before := map[key]escrow.Row{}
	for i := range m.Rows {
		r := &m.Rows[i]
		if r.Region == ep.name {
			continue
		}
		if v := ep.node.View(r.SKU)[r.Region]; v != nil {
			before[key{r.SKU, r.Region}] = *v
		}
	}
	w.step(ep, escrow.Input{Msg: m})
	if ep.down {
		return
	}
	for k, old := range before {
		cur := ep.node.View(k.sku)[k.region]
		if cur == nil {
			continue
		}
		if cur.Minted < old.Minted || cur.Reserved < old.Reserved || cur.Released < old.Released ||
			cur.Sold < old.Sold || cur.Shrunk < old.Shrunk {
			w.res.RowRegressions++
			if w.res.RowRegressions == 1 {
				w.fail("row_regressions: %s's copy of %s/%s went back on a %s from %s", ep.name, k.region, k.sku, m.Type, m.From)
			}
		}
	}
}
