package demo

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/client"
)

// The flash sale's waitlist: every flash shopper asks with a wait, so one
// turned away (no unit here, none borrowed in time) joins its region's
// waitlist and watches the entry; one shopper in five abandons the cart it
// gets (a 2 s hold nobody confirms), so its unit comes back when the hold
// expires and goes to the earliest waiter of that region. The summary
// checks, from what the regions answer, that every promotion went to the
// earliest entry still waiting in its region.

const (
	flashWait      = 30 * time.Second       // how long a flash shopper is willing to wait
	flashAbandon   = 2 * time.Second        // TTL of an abandoned flash cart
	waitPollPeriod = 100 * time.Millisecond // a waiter polls its entry
)

// waitLog records the entries flash shoppers joined and the carts they
// abandoned.
type waitLog struct {
	mu        sync.Mutex
	entries   []string
	abandoned atomic.Uint64
	promoted  atomic.Uint64
}

func (l *waitLog) add(id string) {
	l.mu.Lock()
	l.entries = append(l.entries, id)
	l.mu.Unlock()
}

// flashShopper is shopper w of the flash sale at site s: it holds (or
// waits for) one unit of sku at a time and confirms it, until every unit
// is sold or ctx ends; an abandoner walks away from the first cart it gets.
func (r *run) flashShopper(ctx context.Context, s *site, w int, sku string, soldN, rejN *atomic.Uint64) {
	abandoner := w%5 == 4
	for ctx.Err() == nil && soldN.Load() < r.o.FlashQty {
		ttl := time.Minute
		if abandoner {
			ttl = flashAbandon
		}
		start := time.Now()
		h, e, err := s.client.CreateHoldOrWait(ctx, client.HoldRequest{Items: []api.Item{{SKU: sku, Qty: 1}}, TTL: ttl, Wait: flashWait})
		if ctx.Err() != nil {
			if e != nil {
				r.unknown.Add(1) // joined as the sale ended: it may still be promoted
			} else {
				r.phaseEnded(h, err)
			}
			return
		}
		r.record(time.Since(start))
		if err != nil {
			if client.IsCode(err, "insufficient-stock") || client.IsCode(err, "waitlist-full") {
				r.rejected.Add(1)
				rejN.Add(1)
			} else {
				r.errors.Add(1)
			}
			think(ctx, 20*time.Millisecond)
			continue
		}
		id, state := "", ""
		if h != nil {
			id, state = h.ID, h.State
		} else {
			r.waits.add(e.ID)
			id = r.awaitEntry(ctx, s, e.ID, soldN)
			state = "held"
			if id == "" {
				continue // expired (or the sale ended): try again
			}
			r.waits.promoted.Add(1)
		}
		r.holds.Add(1)
		r.ack(id, state)
		if abandoner {
			r.waits.abandoned.Add(1)
			return // walks away: the hold expires and its unit goes to the next waiter
		}
		c, err := s.client.Confirm(ctx, id)
		if err != nil {
			r.errors.Add(1)
			continue
		}
		r.ack(c.ID, c.State)
		soldN.Add(1)
	}
}

// awaitEntry watches a waitlist entry until it is promoted (it returns the
// hold id) or ends otherwise (""). When the sale ends first, the shopper
// leaves the waitlist.
func (r *run) awaitEntry(ctx context.Context, s *site, id string, soldN *atomic.Uint64) string {
	for ctx.Err() == nil && soldN.Load() < r.o.FlashQty {
		think(ctx, waitPollPeriod)
		e, err := s.client.GetWaitlistEntry(ctx, id)
		if err != nil {
			if ctx.Err() == nil {
				r.errors.Add(1)
			}
			continue
		}
		switch e.State {
		case "promoted":
			return e.HoldID
		case "waiting":
		default:
			return ""
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if e, err := s.client.CancelWaitlistEntry(cctx, id); err != nil && client.IsCode(err, "conflict") {
		// Promoted at the last moment: the unit is held for this shopper
		// until its TTL (the sale is over, nobody will confirm it).
		if got, gerr := s.client.GetWaitlistEntry(cctx, id); gerr == nil && got.HoldID != "" {
			r.ack(got.HoldID, "held")
		}
	} else if err == nil && e.State == "promoted" {
		r.ack(e.HoldID, "held")
	}
	return ""
}

// waitlistCheck reads every entry the flash shoppers joined from the
// region that owns it and checks placement order per region: no entry was
// promoted while an entry of its region placed before it still waited (the
// flash carts are one line of one SKU, so the head-of-line policy is plain
// FIFO). Timestamps are the owning region's clock.
func (r *run) waitlistCheck(ctx context.Context) Check {
	r.waits.mu.Lock()
	ids := append([]string(nil), r.waits.entries...)
	r.waits.mu.Unlock()
	byName := map[string]*site{}
	for _, s := range r.env.sites {
		byName[s.name] = s
	}
	per := map[string][]api.WaitlistEntry{}
	for _, id := range ids {
		region, _, _ := strings.Cut(id, "-")
		s := byName[region]
		if s == nil {
			s = r.env.sites[0]
		}
		e, err := s.client.GetWaitlistEntry(ctx, id)
		if err != nil {
			return Check{Name: "waitlist order", OK: false, Detail: fmt.Sprintf("reading entry %s: %v", id, err)}
		}
		per[e.Region] = append(per[e.Region], e.WaitlistEntry)
	}
	promoted, bad := 0, ""
	regions := make([]string, 0, len(per))
	for reg, es := range per {
		regions = append(regions, reg)
		sort.Slice(es, func(i, j int) bool { return es[i].CreatedAt.Before(es[j].CreatedAt) })
		for i, p := range es {
			if p.State != "promoted" {
				continue
			}
			promoted++
			for _, o := range es[:i] {
				stillWaiting := o.State == "waiting" || o.UpdatedAt.After(p.UpdatedAt)
				if o.CreatedAt.Before(p.CreatedAt) && stillWaiting && bad == "" {
					bad = fmt.Sprintf("in %s, %s (joined %s) was promoted while %s (joined %s) still waited",
						reg, p.ID, p.CreatedAt.Format("15:04:05.000"), o.ID, o.CreatedAt.Format("15:04:05.000"))
				}
			}
		}
	}
	sort.Strings(regions)
	ab := r.waits.abandoned.Load()
	switch {
	case bad != "":
		return Check{Name: "waitlist order", OK: false, Detail: bad}
	case len(ids) > 0 && promoted == 0:
		return Check{Name: "waitlist order", OK: false,
			Detail: fmt.Sprintf("%d shoppers waited and %d carts were abandoned, but no waiter was promoted", len(ids), ab)}
	}
	return Check{Name: "waitlist order", OK: true,
		Detail: fmt.Sprintf("%d abandoned carts; %d of %d waiters promoted, each the earliest still waiting in its region (%s)",
			ab, promoted, len(ids), strings.Join(regions, ", "))}
}
