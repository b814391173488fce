package demo

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

type rowKey struct{ sku, region string }

// snapshot returns every region's view of every row, read on each region's
// apply loop.
func (r *run) snapshot(ctx context.Context) (map[string]map[rowKey]escrow.Row, error) {
	out := make(map[string]map[rowKey]escrow.Row, len(r.env.sites))
	for _, s := range r.env.sites {
		view := map[rowKey]escrow.Row{}
		if err := s.reg.Inspect(ctx, func(n *escrow.Node) {
			for _, row := range n.Rows() {
				view[rowKey{row.SKU, row.Region}] = row
			}
		}); err != nil {
			return nil, fmt.Errorf("demo: inspect %s: %w", s.name, err)
		}
		out[s.name] = view
	}
	return out, nil
}

// divergence describes how the regions' views differ ("" when converged):
// every region must hold every row at the owner's version.
func divergence(views map[string]map[rowKey]escrow.Row) string {
	own := map[rowKey]escrow.Row{}
	for region, view := range views {
		for k, row := range view {
			if k.region == region {
				own[k] = row
			}
		}
	}
	var diffs []string
	for region, view := range views {
		for k, want := range own {
			if k.region == region || want.Seq == 0 {
				continue
			}
			got, ok := view[k]
			if !ok || !got.Equal(&want) {
				diffs = append(diffs, fmt.Sprintf("%s sees %s/%s at seq %d, owner has %d", region, k.region, k.sku, got.Seq, want.Seq))
			}
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 3 {
		diffs = append(diffs[:3], fmt.Sprintf("and %d more", len(diffs)-3))
	}
	return strings.Join(diffs, "; ")
}

// waitConverged waits until every region agrees on every row.
func (r *run) waitConverged(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		views, err := r.snapshot(ctx)
		if err != nil {
			return err
		}
		d := divergence(views)
		if d == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not converged after %v: %s", timeout, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// waitKnown waits until every region has seen some row of sku, so that a
// hold for it anywhere can borrow.
func (r *run) waitKnown(ctx context.Context, sku string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		known := 0
		for _, s := range r.env.sites {
			_ = s.reg.Inspect(ctx, func(n *escrow.Node) {
				if v := n.View(sku); len(v) > 0 {
					known++
				}
			})
		}
		if known == len(r.env.sites) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: %s not known everywhere after %v", sku, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// check computes the result: totals over the owners' rows (the merged view)
// and the invariants.
func (r *run) check(ctx context.Context, stock uint64, flash string, convErr error, convergeMs int64) (*Result, error) {
	res := &Result{Stock: stock, ConvergeMs: convergeMs}
	for _, s := range r.env.sites {
		res.Regions = append(res.Regions, s.name)
		res.Borrows += s.reg.Stats().BorrowsSent
	}
	res.Holds, res.Rejected, res.Errors = r.holds.Load(), r.rejected.Load(), r.errors.Load()
	elapsed := time.Since(r.started).Seconds()
	res.HoldsPerSec = float64(res.Holds) / elapsed
	r.mu.Lock()
	res.P99Ms = float64(r.hist.Quantile(0.99).Microseconds()) / 1000
	r.mu.Unlock()

	views, err := r.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	merged := map[string]escrow.View{}
	for region, view := range views {
		for k, row := range view {
			if k.region != region {
				continue
			}
			if merged[k.sku] == nil {
				merged[k.sku] = escrow.View{}
			}
			row := row
			merged[k.sku][region] = &row
		}
	}
	var minted, shrunk uint64
	var conservation []string
	skus := make([]string, 0, len(merged))
	for sku := range merged {
		skus = append(skus, sku)
	}
	sort.Strings(skus)
	for _, sku := range skus {
		v := merged[sku]
		var sold, held, m, sh uint64
		for _, row := range v {
			sold += row.Sold
			held += row.Held()
			m += row.Minted
			sh += row.Shrunk
		}
		minted += m
		shrunk += sh
		res.Sold += sold
		res.Held += held
		if sold+held > m-sh {
			res.Oversell += sold + held - (m - sh)
		}
		if err := v.CheckConservation(); err != nil {
			conservation = append(conservation, sku+": "+err.Error())
		}
	}
	res.Checks = append(res.Checks, Check{Name: "sold + held <= stock", OK: res.Oversell == 0 && minted == stock,
		Detail: fmt.Sprintf("sold %d + held %d of %d units minted (%d expected), oversell %d", res.Sold, res.Held, minted, stock, res.Oversell)})
	res.Checks = append(res.Checks, Check{Name: "conservation across regions", OK: len(conservation) == 0,
		Detail: orJoin(conservation, fmt.Sprintf("available + held + sold + shrunk = minted for all %d SKUs", len(skus)))})

	lost := r.lostAcked(ctx, views)
	res.LostAcked = len(lost)
	r.mu.Lock()
	nAcked := len(r.acked)
	r.mu.Unlock()
	res.Checks = append(res.Checks, Check{Name: "every acknowledged hold accounted", OK: len(lost) == 0,
		Detail: orJoin(lost, fmt.Sprintf("%d acknowledged holds found at their owners in their acknowledged state", nAcked))})

	res.Converged = convErr == nil
	detail := fmt.Sprintf("all %d regions agree on every row; %d ms after heal", len(r.env.sites), convergeMs)
	if convErr != nil {
		detail = convErr.Error()
	}
	res.Checks = append(res.Checks, Check{Name: "converged after heal", OK: res.Converged, Detail: detail})
	return res, nil
}

// lostAcked lists acknowledged holds missing at their owner or in a state
// that contradicts the acknowledgement.
func (r *run) lostAcked(ctx context.Context, _ map[string]map[rowKey]escrow.Row) []string {
	r.mu.Lock()
	acks := make([]acked, 0, len(r.acked))
	for _, a := range r.acked {
		acks = append(acks, *a)
	}
	r.mu.Unlock()
	byOwner := map[string][]acked{}
	for _, a := range acks {
		owner, err := escrow.OwnerOf(a.id)
		if err != nil {
			byOwner[""] = append(byOwner[""], a)
			continue
		}
		byOwner[owner] = append(byOwner[owner], a)
	}
	var lost []string
	for _, s := range r.env.sites {
		list := byOwner[s.name]
		delete(byOwner, s.name)
		_ = s.reg.Inspect(ctx, func(n *escrow.Node) {
			for _, a := range list {
				h, ok := n.Hold(a.id)
				switch {
				case !ok:
					lost = append(lost, a.id+" missing")
				case a.state == "confirmed" && h.State != escrow.Confirmed,
					a.state == "released" && h.State != escrow.Released:
					lost = append(lost, fmt.Sprintf("%s acknowledged %s, now %s", a.id, a.state, h.State))
				}
			}
		})
	}
	for owner, list := range byOwner {
		for _, a := range list {
			lost = append(lost, fmt.Sprintf("%s owned by unknown region %q", a.id, owner))
		}
	}
	sort.Strings(lost)
	return lost
}

func orJoin(problems []string, fine string) string {
	if len(problems) == 0 {
		return fine
	}
	if len(problems) > 3 {
		problems = append(problems[:3], fmt.Sprintf("and %d more", len(problems)-3))
	}
	return strings.Join(problems, "; ")
}

// progress prints the live status until the returned stop is called.
func (r *run) progress(ctx context.Context) (stop func()) {
	if r.o.JSON {
		return func() {}
	}
	every := time.Second
	if r.o.Live {
		every = 250 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		last, lastAt := r.holds.Load(), time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				h := r.holds.Load()
				rate := float64(h-last) / now.Sub(lastAt).Seconds()
				last, lastAt = h, now
				line := r.statusLine(ctx, rate)
				if r.o.Live {
					fmt.Fprint(r.o.Out, "\r\033[K"+line)
				} else {
					fmt.Fprintln(r.o.Out, line)
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
		if r.o.Live {
			fmt.Fprint(r.o.Out, "\r\033[K")
		}
	}
}

func (r *run) statusLine(ctx context.Context, rate float64) string {
	r.mu.Lock()
	p99 := r.win.Quantile(0.99)
	r.win.Reset()
	r.mu.Unlock()
	var sold, held, borrows uint64
	var avail []string
	for _, s := range r.env.sites {
		var a uint64
		_ = s.reg.Inspect(ctx, func(n *escrow.Node) {
			for _, sku := range n.SKUs() {
				a += n.Available(sku)
				if v := n.View(sku); v != nil {
					if row := v[n.Region()]; row != nil {
						sold += row.Sold
						held += row.Held()
					}
				}
			}
		})
		borrows += s.reg.Stats().BorrowsSent
		cut := ""
		if s.proxy.IsCut() {
			cut = "(cut)"
		}
		avail = append(avail, fmt.Sprintf("%s%s=%d", s.name, cut, a))
	}
	return fmt.Sprintf("[%-9s %5.1fs] %6.0f holds/s  p99 %6.1fms | sold %5d  held %4d  rejected %5d  borrows %5d | available %s",
		r.phase.Load(), time.Since(r.started).Seconds(), rate, float64(p99.Microseconds())/1000,
		sold, held, r.rejected.Load(), borrows, strings.Join(avail, " "))
}
