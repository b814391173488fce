package demo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/client"
)

// stockOps is what the partial-hold and recount phase did, for its checks
// and the summary's key=value line.
type stockOps struct {
	partialSKU                   string
	partialAsked, partialGranted uint64
	partialAvailable             uint64 // available at the region just before the hold
	recountSKU                   string
	recountOnHand                uint64
	recountSum                   uint64 // Σ available + held over regions in the recount's answer
	recountDelta                 int64
	recountUnresolved            uint64
	minted                       uint64 // units the phase minted (restock, positive recount)
}

// stockPhase shows a partial hold on a nearly sold-out SKU and an ERP
// recount of the steady SKU with the most units left at the first region.
func (r *run) stockPhase(ctx context.Context, skus []string) (*stockOps, error) {
	r.setPhase("stock")
	out := &stockOps{partialSKU: "last-1", partialAsked: 5}
	s := r.env.sites[0]
	var most uint64
	for _, sku := range skus {
		if st, err := s.client.Stock(ctx, sku); err == nil && (out.recountSKU == "" || st.Available > most) {
			out.recountSKU, most = sku, st.Available
		}
	}
	if out.recountSKU == "" {
		return nil, fmt.Errorf("demo: no steady SKU known at %s", s.name)
	}

	// A partial hold: 3 units left, a shopper asks for 5 and takes them.
	const left = 3
	if _, err := s.client.Restock(ctx, out.partialSKU, left); err != nil {
		return nil, fmt.Errorf("demo: restock %s: %w", out.partialSKU, err)
	}
	s.restocked()
	out.minted += left
	st, err := s.client.Stock(ctx, out.partialSKU)
	if err != nil {
		return nil, fmt.Errorf("demo: stock %s: %w", out.partialSKU, err)
	}
	out.partialAvailable = st.Available
	h, err := s.client.CreateHold(ctx, client.HoldRequest{Partial: true, Cart: "demo-cart-1",
		Items: []api.Item{{SKU: out.partialSKU, Qty: out.partialAsked}}})
	if err != nil {
		return nil, fmt.Errorf("demo: partial hold of %s: %w", out.partialSKU, err)
	}
	r.ack(h.ID, h.State)
	for _, it := range h.Items {
		if it.SKU == out.partialSKU && it.Granted != nil {
			out.partialGranted = *it.Granted
		}
	}
	r.say("== stock operations: %s has %d units left at %s; a partial hold asking %d was granted %d (%s)",
		out.partialSKU, out.partialAvailable, s.name, out.partialAsked, out.partialGranted, h.ID)
	if rel, err := s.client.Release(ctx, h.ID); err == nil {
		r.ack(rel.ID, rel.State)
	} else {
		return nil, fmt.Errorf("demo: release %s: %w", h.ID, err)
	}

	// An ERP recount of a steady SKU at its home region: the warehouse
	// counted 4 units fewer than the region's view (damaged on the shelf),
	// or 6 more when fewer than 4 are available there.
	st, err = s.client.Stock(ctx, out.recountSKU)
	if err != nil {
		return nil, fmt.Errorf("demo: stock %s: %w", out.recountSKU, err)
	}
	var before int64
	for _, rs := range st.Regions {
		before += max(rs.Available, 0) + int64(rs.Held)
	}
	out.recountOnHand = uint64(max(before, 0)) + 6
	if st.Available >= 4 && before >= 4 {
		out.recountOnHand = uint64(before) - 4
	}
	// A peer not heard from lately makes the region refuse (stale-view)
	// rather than guess: retry for a while, never force.
	deadline := time.Now().Add(10 * time.Second)
	var rc *client.Stock
	for {
		rc, err = s.client.Recount(ctx, out.recountSKU, client.RecountRequest{OnHand: out.recountOnHand, AsOf: time.Now()})
		if err == nil || !client.IsCode(err, "stale-view") || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		return nil, fmt.Errorf("demo: recount %s: %w", out.recountSKU, err)
	}
	if rc.Recount == nil {
		return nil, errors.New("demo: recount answer without its result")
	}
	out.recountDelta, out.recountUnresolved = rc.Recount.Delta, rc.Recount.Unresolved
	if out.recountDelta > 0 {
		s.restocked() // applied as a restock: one restock event
		out.minted += uint64(out.recountDelta)
	}
	var sum int64
	for _, rs := range rc.Regions {
		sum += max(rs.Available, 0) + int64(rs.Held)
	}
	out.recountSum = uint64(max(sum, 0))
	r.say("   recount of %s at %s to %d on hand (was %d): delta %+d; available + held over regions now %d",
		out.recountSKU, s.name, out.recountOnHand, before, out.recountDelta, out.recountSum)
	return out, nil
}

// checks are the phase's summary lines.
func (o *stockOps) checks() []Check {
	return []Check{
		{Name: "partial hold", OK: o.partialGranted <= o.partialAsked && o.partialGranted == min(o.partialAsked, o.partialAvailable) && o.partialGranted > 0,
			Detail: fmt.Sprintf("%s: asked %d, granted %d = what was available (%d)", o.partialSKU, o.partialAsked, o.partialGranted, o.partialAvailable)},
		{Name: "recount", OK: o.recountSum == o.recountOnHand && o.recountUnresolved == 0,
			Detail: fmt.Sprintf("%s: available + held over regions = %d, on_hand %d (delta %+d)", o.recountSKU, o.recountSum, o.recountOnHand, o.recountDelta)},
	}
}
