package soak

// Shoppers and the stock keeper: closed-loop HTTP clients that hold,
// confirm, release or abandon, retrying with the same idempotency key, and
// record in the Ledger what they were told.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/client"
)

// counts is what the shoppers and the stock keeper did, for the report.
type counts struct {
	mu                           sync.Mutex
	asked, acked, refused, unack int            // holds: asked, acknowledged, definitive 4xx, no answer after retries
	retries                      int            // requests sent again after a lost or 5xx answer
	confirms, releases, abandons int            // acknowledged confirms and releases; holds left to expire
	restocks, writeOffs          int            // acknowledged admin writes
	adminLost                    int            // admin writes whose answer was lost
	codes                        map[string]int // answers other than 2xx, by status and problem code
}

func (c *counts) add(f func(c *counts)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

func (c *counts) noteErr(err error) {
	code := "transport"
	if s := client.StatusOf(err); s != 0 {
		code = fmt.Sprint(s)
		var ce *client.Error
		if errors.As(err, &ce) && ce.Code() != "" {
			code += " " + ce.Code()
		}
	}
	c.add(func(c *counts) { c.codes[code]++ })
}

func (c *counts) codeList() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ks []string
	for k := range c.codes {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s: %d", k, c.codes[k]))
	}
	return strings.Join(parts, ", ")
}

// retryable: the answer was lost (status 0) or the region could not serve
// it now (5xx, 429); the request may or may not have been applied.
func retryable(err error) bool {
	s := client.StatusOf(err)
	return s == 0 || s >= 500 || s == http.StatusTooManyRequests
}

// retry calls f until it succeeds, fails definitively, ctx ends or the
// retry window closes; it returns f's last error.
func retry(ctx context.Context, window time.Duration, cnt *counts, f func(ctx context.Context) error) error {
	end := time.Now().Add(window)
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			cnt.add(func(c *counts) { c.retries++ })
		}
		err := f(ctx)
		if err == nil {
			return nil
		}
		cnt.noteErr(err)
		if !retryable(err) || ctx.Err() != nil || time.Now().Add(backoff).After(end) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// shopper is one closed-loop client.
type shopper struct {
	id      int
	rng     *rand.Rand
	clients []*client.Client
	skus    []string
	think   time.Duration
	window  time.Duration // retry window of one request
	ledger  *ledgerBook
	cnt     *counts
}

// ledgerBook is the Ledger behind a lock.
type ledgerBook struct {
	mu sync.Mutex
	l  Ledger
}

func (b *ledgerBook) with(f func(l *Ledger)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(&b.l)
}

func (s *shopper) run(ctx context.Context) {
	for n := 0; ctx.Err() == nil; n++ {
		s.shop(ctx, n)
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(s.rng.Int64N(int64(2*s.think) + 1))):
		}
	}
}

// shop asks one region for one hold and then confirms, releases or
// abandons it.
func (s *shopper) shop(ctx context.Context, n int) {
	g := s.rng.IntN(len(s.clients))
	rec := &HoldRecord{Key: fmt.Sprintf("s%d-%d", s.id, n), Gateway: Regions[g],
		SKU: s.skus[s.rng.IntN(len(s.skus))], Qty: 1 + s.rng.Uint64N(2)}
	s.ledger.with(func(l *Ledger) { l.Holds = append(l.Holds, rec) })
	s.cnt.add(func(c *counts) { c.asked++ })
	ttl := []time.Duration{3 * time.Second, 8 * time.Second, 20 * time.Second}[s.rng.IntN(3)]
	cl := s.clients[g]
	var id string
	err := retry(ctx, s.window, s.cnt, func(ctx context.Context) error {
		h, err := cl.CreateHold(ctx, client.HoldRequest{Items: []api.Item{{SKU: rec.SKU, Qty: rec.Qty}},
			TTL: ttl, IdempotencyKey: rec.Key, Cart: rec.Key})
		if err == nil {
			id = h.ID
			s.ledger.with(func(*Ledger) { rec.NoteAck(h.ID) })
		}
		return err
	})
	switch {
	case err == nil:
		s.cnt.add(func(c *counts) { c.acked++ })
	case retryable(err):
		s.cnt.add(func(c *counts) { c.unack++ })
		return
	default:
		s.cnt.add(func(c *counts) { c.refused++ })
		return
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Duration(s.rng.Int64N(int64(4*s.think) + 1))):
	}
	switch p := s.rng.IntN(100); {
	case p < 55:
		if retry(ctx, s.window, s.cnt, func(ctx context.Context) error { _, err := cl.Confirm(ctx, id); return err }) == nil {
			s.ledger.with(func(*Ledger) { rec.Confirmed = true })
			s.cnt.add(func(c *counts) { c.confirms++ })
		}
	case p < 80:
		if retry(ctx, s.window, s.cnt, func(ctx context.Context) error { _, err := cl.Release(ctx, id); return err }) == nil {
			s.ledger.with(func(*Ledger) { rec.Released = true })
			s.cnt.add(func(c *counts) { c.releases++ })
		}
	default:
		s.cnt.add(func(c *counts) { c.abandons++ })
	}
}

// admin restocks (qty > 0) or writes off (qty < 0) units of sku at one
// region, and books the outcome: acknowledged, refused, or lost.
func admin(ctx context.Context, cl *client.Client, book *ledgerBook, cnt *counts, sku string, qty int64) error {
	// One attempt: an admin write has no idempotency key, so a retry
	// after a lost answer could apply it twice.
	var (
		st  *client.Stock
		err error
	)
	if qty > 0 {
		st, err = cl.Restock(ctx, sku, uint64(qty))
	} else {
		// A write-off takes at most what is available here: the answer
		// says how much it took.
		st, err = cl.WriteOff(ctx, sku, uint64(-qty))
	}
	if err != nil {
		cnt.noteErr(err)
	} else if st.Applied == nil {
		err = fmt.Errorf("the answer to an admin write of %s has no applied count", sku)
	}
	book.with(func(l *Ledger) {
		switch {
		case err == nil && qty > 0:
			l.Restocked[sku] += *st.Applied
		case err == nil:
			l.WrittenOff[sku] += *st.Applied
		case !retryable(err):
			// Refused (write-off of more than is here): nothing applied.
		case qty > 0:
			l.RestockAmbiguous[sku] += uint64(qty)
		default:
			l.WriteOffAmbiguous[sku] += uint64(-qty)
		}
	})
	switch {
	case err == nil && qty > 0:
		cnt.add(func(c *counts) { c.restocks++ })
	case err == nil:
		cnt.add(func(c *counts) { c.writeOffs++ })
	case retryable(err):
		cnt.add(func(c *counts) { c.adminLost++ })
	}
	return err
}

// stockKeeper restocks a random SKU at a random region every interval,
// and writes one unit off every tenth time.
func stockKeeper(ctx context.Context, rng *rand.Rand, clients []*client.Client, skus []string, every time.Duration,
	qty int64, book *ledgerBook, cnt *counts) {
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		sku, cl := skus[rng.IntN(len(skus))], clients[rng.IntN(len(clients))]
		q := qty
		if n%10 == 0 {
			q = -1
		}
		_ = admin(ctx, cl, book, cnt, sku, q)
	}
}
