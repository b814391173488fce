package sim

import "github.com/holdfast-io/holdfast/escrow"

// checkHoldClock runs, on every durable write of hold h (previous durable
// state prev, if seen), the checkers that a clock jump or a lost reply
// could break:
//
//   - clock_errors: a hold that ended (expired, released, confirmed) is
//     never held again, and a hold once deleted is never written again: a
//     jump of the granting node's clock cannot resurrect a hold.
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
