// Package demo runs the whole of holdfast in one process: an embedded NATS
// server, three regions with Pebble in temp dirs and the real HTTP API on
// loopback, and concurrent shoppers over HTTP through a steady phase, a
// partition that cuts one region off, the heal, and a flash sale down to the
// last unit. It then checks the invariants that make holdfast worth running.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/client"
	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/internal/hist"
)

// Options configure a demo run. Zero values take the defaults.
type Options struct {
	Duration time.Duration // whole run, phases scale with it (20s)
	Regions  int           // 2..8 (3: eu, us, ap)
	Shoppers int           // concurrent shoppers in the steady phases (24)
	SKUs     int           // SKUs on sale in the steady phases (12)
	FlashQty uint64        // units in the flash sale (40)
	Seed     uint64        // shopper randomness (1)
	Keep     bool          // leave everything running and the data on disk
	JSON     bool          // print the result as JSON instead of the summary
	Live     bool          // one refreshing status line (a terminal)
	Out      io.Writer
	// BreakRegion makes the named region grant holds without checking stock.
	// Test-only: it proves that the demo's checks can fail.
	BreakRegion string
	// WhileKept runs after the summary when Keep is set; the demo stays up
	// until it returns.
	WhileKept func(urls map[string]string)
}

func (o *Options) defaults() error {
	if o.Duration == 0 {
		o.Duration = 20 * time.Second
	}
	if o.Duration < 3*time.Second || o.Duration > time.Hour {
		return fmt.Errorf("demo: duration must be between 3s and 1h, got %v", o.Duration)
	}
	if o.Regions == 0 {
		o.Regions = 3
	}
	if o.Regions < 2 || o.Regions > len(regionNames) {
		return fmt.Errorf("demo: regions must be between 2 and %d, got %d", len(regionNames), o.Regions)
	}
	if o.Shoppers == 0 {
		o.Shoppers = 24
	}
	if o.Shoppers < 1 || o.Shoppers > 1024 {
		return fmt.Errorf("demo: shoppers must be between 1 and 1024, got %d", o.Shoppers)
	}
	if o.SKUs == 0 {
		o.SKUs = 12
	}
	if o.SKUs < 1 || o.SKUs > 1000 {
		return fmt.Errorf("demo: skus must be between 1 and 1000, got %d", o.SKUs)
	}
	if o.FlashQty == 0 {
		o.FlashQty = 40
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	return nil
}

// Check is one invariant the demo verified.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Result is what the demo measured and checked.
type Result struct {
	Regions    []string `json:"regions"`
	Stock      uint64   `json:"stock"`    // units minted, all SKUs
	Sold       uint64   `json:"sold"`     // units confirmed, all SKUs
	Held       uint64   `json:"held"`     // units still in open holds at the end
	Oversell   uint64   `json:"oversell"` // units sold or held beyond stock
	LostAcked  int      `json:"lost_acked"`
	Converged  bool     `json:"converged"`
	Holds      uint64   `json:"holds"`    // holds granted
	Rejected   uint64   `json:"rejected"` // holds refused for lack of stock
	Errors     uint64   `json:"errors"`   // other failures (e.g. 503 while cut off)
	Borrows    uint64   `json:"borrows"`
	FlashStock uint64   `json:"flash_stock"`
	FlashSold  uint64   `json:"flash_sold"`
	// The flash sale's waitlist: shoppers who joined it, those promoted to
	// a hold, and flash carts abandoned.
	FlashWaiters   uint64 `json:"flash_waiters"`
	FlashPromoted  uint64 `json:"flash_promoted"`
	FlashAbandoned uint64 `json:"flash_abandoned"`
	// The stock operations phase: a partial hold's asked and granted
	// units, a recount's on-hand count.
	PartialAsked   uint64  `json:"partial_asked"`
	PartialGranted uint64  `json:"partial_granted"`
	RecountOnHand  uint64  `json:"recount_on_hand"`
	ConvergeMs     int64   `json:"converge_ms"`
	Events         uint64  `json:"events"` // events in the regions' logs, read back from their feeds
	HoldsPerSec    float64 `json:"holds_per_s"`
	P99Ms          float64 `json:"p99_ms"`
	Checks         []Check `json:"checks"`
}

// OK reports whether every check held.
func (r *Result) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return len(r.Checks) > 0
}

// KeyValues is the last line of the demo's output.
func (r *Result) KeyValues() string {
	return fmt.Sprintf("sold=%d stock=%d oversell=%d lost_acked=%d converged=%t holds=%d rejected=%d borrows=%d flash_sold=%d flash_stock=%d partial_granted=%d partial_asked=%d recount_on_hand=%d events=%d ok=%t",
		r.Sold, r.Stock, r.Oversell, r.LostAcked, r.Converged, r.Holds, r.Rejected, r.Borrows, r.FlashSold, r.FlashStock,
		r.PartialGranted, r.PartialAsked, r.RecountOnHand, r.Events, r.OK())
}

// acked is a hold the demo was told about, with the last state a region
// acknowledged for it.
type acked struct {
	id    string
	state string
}

type run struct {
	o     *Options
	env   *env
	rng   *rand.Rand
	mu    sync.Mutex
	acked map[string]*acked
	hist  hist.Histogram // hold latency, whole run
	win   hist.Histogram // hold latency, current progress window
	phase atomic.Value   // string

	holds, rejected, errors atomic.Uint64
	// unknown counts holds asked for when a phase ended: the answer was
	// cut off, so a hold may exist that no shopper heard of.
	unknown atomic.Uint64
	started time.Time
	waits   waitLog // the flash sale's waitlist (waitlist.go)
}

// Run runs the demo and returns what it found. An error means the demo could
// not run; failed checks are in the Result (see OK).
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	// The progress goroutine and the phases both print: serialise their
	// writes, since Out (a bytes.Buffer in tests) need not be safe for
	// concurrent use.
	o.Out = &lockedWriter{w: o.Out}
	e, err := startEnv(ctx, &o)
	if err != nil {
		return nil, err
	}
	defer e.close()
	r := &run{o: &o, env: e, rng: rand.New(rand.NewPCG(o.Seed, 0x64656d6f)), acked: map[string]*acked{}, started: time.Now()}
	r.phase.Store("start")
	stop := r.progress(ctx)
	res, err := r.phases(ctx)
	stop()
	if err != nil {
		return nil, err
	}
	r.report(res)
	if o.Keep && o.WhileKept != nil {
		urls := map[string]string{}
		for _, s := range e.sites {
			urls[s.name] = s.url
		}
		o.WhileKept(urls)
	}
	return res, nil
}

func (r *run) say(format string, args ...any) {
	if r.o.JSON {
		return
	}
	if r.o.Live {
		format = "\r\033[K" + format
	}
	// One Write, so that a progress line cannot land inside it.
	fmt.Fprintf(r.o.Out, format+"\n", args...)
}

// lockedWriter makes one Write at a time reach w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (r *run) phases(ctx context.Context) (*Result, error) {
	d := r.o.Duration
	sites := r.env.sites
	names := make([]string, len(sites))
	for i, s := range sites {
		names[i] = s.name
	}
	r.say("holdfast demo: %d regions (%s), embedded NATS at %s, Pebble under %s", len(sites), strings.Join(names, ", "), r.env.natsURL, r.env.dir)

	// 1. Restock: every SKU has a home region with most of its stock, and a
	// little everywhere else, so that steady traffic needs some borrowing.
	r.setPhase("restock")
	skus := make([]string, r.o.SKUs)
	var stock uint64
	for i := range skus {
		skus[i] = fmt.Sprintf("sku-%02d", i+1)
		for j, s := range sites {
			qty := uint64(20)
			if j == i%len(sites) {
				qty = 200
			}
			if _, err := s.client.Restock(ctx, skus[i], qty); err != nil {
				return nil, fmt.Errorf("demo: restock %s at %s: %w", skus[i], s.name, err)
			}
			s.restocked()
			stock += qty
		}
	}
	r.say("== restock: %d SKUs, %d units, most of each SKU in one home region", len(skus), stock)
	if err := r.waitConverged(ctx, 10*time.Second); err != nil {
		return nil, err
	}

	// 2. Steady traffic everywhere.
	r.setPhase("steady")
	r.say("== steady: %d shoppers hold, confirm, release and abandon carts in every region", r.o.Shoppers)
	r.shop(ctx, skus, d*30/100)

	// 3. Cut one region off its NATS connection; everyone keeps selling.
	cut := sites[0]
	r.setPhase("partition")
	cut.proxy.Cut()
	r.say("== partition: %s is cut off from NATS; every region keeps selling from its own slice", cut.name)
	r.shop(ctx, skus, d*25/100)

	// 4. Heal and converge.
	r.setPhase("heal")
	var during []string
	for _, s := range sites {
		during = append(during, fmt.Sprintf("%s %d", s.name, s.grantedCut.Load()))
	}
	r.say("   holds granted while %s was cut off: %s (each from its own slice)", cut.name, strings.Join(during, ", "))
	cut.proxy.Heal()
	healed := time.Now()
	r.say("== heal: %s reconnects; waiting for every region to agree on every row", cut.name)
	convErr := r.waitConverged(ctx, max(10*time.Second, d/2))
	convergeMs := time.Since(healed).Milliseconds()
	if convErr == nil {
		r.say("   converged in %d ms", convergeMs)
	} else {
		r.say("   NOT converged: %v", convErr)
	}

	// 5. Flash sale: one SKU, FlashQty units in one region, shoppers in every
	// region race for them until none is left.
	r.setPhase("flash")
	flash := "flash-1"
	home := sites[len(sites)-1]
	if _, err := home.client.Restock(ctx, flash, r.o.FlashQty); err != nil {
		return nil, fmt.Errorf("demo: restock %s: %w", flash, err)
	}
	home.restocked()
	stock += r.o.FlashQty
	r.say("== flash sale: %d units of %s stocked at %s; %d shoppers in every region race for them, waiting when turned away; one in five abandons its cart",
		r.o.FlashQty, flash, home.name, 4*r.o.Shoppers)
	if err := r.waitKnown(ctx, flash, 10*time.Second); err != nil {
		return nil, err
	}
	flashSold, flashRejected := r.flashSale(ctx, flash, max(d*20/100, 3*flashAbandon))
	r.say("   %d of %d units sold; %d attempts turned away; %d shoppers waited, %d promoted, %d carts abandoned",
		flashSold, r.o.FlashQty, flashRejected, len(r.waits.entries), r.waits.promoted.Load(), r.waits.abandoned.Load())

	// 6. Stock operations: a partial hold and an ERP recount.
	ops, err := r.stockPhase(ctx, skus)
	if err != nil {
		return nil, err
	}
	stock += ops.minted
	locs, err := r.locationPhase(ctx)
	if err != nil {
		return nil, err
	}
	stock += locs.minted

	// 7. Summary, after an attacker's forged rows.
	r.setPhase("checks")
	forged := r.forge(ctx, flash)
	r.say("== forged rows from a NATS client without keys: %s", forged.Detail)
	if err := r.waitConverged(ctx, 10*time.Second); err != nil && convErr == nil {
		convErr = err
	}
	res, err := r.check(ctx, stock, flash, convErr, convergeMs)
	if err != nil {
		return nil, err
	}
	res.Checks = append(res.Checks, forged)
	res.Checks = append(res.Checks, ops.checks()...)
	res.Checks = append(res.Checks, locs.check())
	res.PartialAsked, res.PartialGranted, res.RecountOnHand = ops.partialAsked, ops.partialGranted, ops.recountOnHand
	res.Checks = append(res.Checks, r.waitlistCheck(ctx))
	evCheck, nEvents := r.checkEvents(ctx)
	res.Checks = append(res.Checks, evCheck)
	res.Events = nEvents
	res.FlashStock, res.FlashSold = r.o.FlashQty, flashSold
	res.FlashWaiters, res.FlashPromoted, res.FlashAbandoned = uint64(len(r.waits.entries)), r.waits.promoted.Load(), r.waits.abandoned.Load()
	if res.FlashSold > res.FlashStock {
		res.Checks = append(res.Checks, Check{Name: "flash sale", OK: false,
			Detail: fmt.Sprintf("%d units confirmed of %d", res.FlashSold, res.FlashStock)})
	} else {
		res.Checks = append(res.Checks, Check{Name: "flash sale", OK: res.FlashSold == res.FlashStock,
			Detail: fmt.Sprintf("%d of %d units confirmed, each exactly once", res.FlashSold, res.FlashStock)})
	}
	return res, nil
}

func (r *run) setPhase(p string) { r.phase.Store(p) }

// shop runs the steady shoppers for d.
func (r *run) shop(ctx context.Context, skus []string, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < r.o.Shoppers; w++ {
		rng := rand.New(rand.NewPCG(r.o.Seed, uint64(w)+uint64(time.Since(r.started))))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				s := r.env.sites[rng.IntN(len(r.env.sites))]
				// Skewed choice: low-numbered SKUs are popular.
				sku := skus[min(rng.IntN(len(skus)), rng.IntN(len(skus)))]
				r.cart(ctx, rng, s, []api.Item{{SKU: sku, Qty: uint64(1 + rng.IntN(2))}})
				think(ctx, time.Duration(50+rng.IntN(100))*time.Millisecond)
			}
		}()
	}
	wg.Wait()
}

// cart is one shopper: hold, then confirm (60%), release (20%) or abandon.
func (r *run) cart(ctx context.Context, rng *rand.Rand, s *site, items []api.Item) {
	fate := rng.IntN(10)
	ttl := time.Minute
	if fate >= 8 {
		ttl = 2 * time.Second // abandoned: the sweeper returns it
	}
	start := time.Now()
	h, err := s.client.CreateHold(ctx, client.HoldRequest{Items: items, TTL: ttl})
	if ctx.Err() != nil {
		r.phaseEnded(h, err)
		return
	}
	r.record(time.Since(start))
	switch {
	case err == nil:
		r.holds.Add(1)
		if r.phase.Load() == "partition" {
			s.grantedCut.Add(1)
		}
		r.ack(h.ID, h.State)
	case client.IsCode(err, "insufficient-stock"):
		r.rejected.Add(1)
		return
	default:
		r.errors.Add(1)
		return
	}
	var next *client.Hold
	switch {
	case fate < 6:
		next, err = s.client.Confirm(ctx, h.ID)
	case fate < 8:
		next, err = s.client.Release(ctx, h.ID)
	default:
		return
	}
	if err == nil {
		r.ack(next.ID, next.State)
	} else if ctx.Err() == nil {
		r.errors.Add(1)
	}
}

func (r *run) ack(id, state string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a := r.acked[id]; a != nil {
		a.state = state
		return
	}
	r.acked[id] = &acked{id: id, state: state}
}

func (r *run) record(d time.Duration) {
	r.mu.Lock()
	r.hist.Record(d)
	r.win.Record(d)
	r.mu.Unlock()
}

// flashSale runs shoppers in every region that hold and confirm one unit of
// sku at a time until every unit is sold (or the phase ends). A shopper who
// is turned away waits on the waitlist (flashShopper); some abandon their
// carts. It returns the units confirmed and the refusals.
func (r *run) flashSale(ctx context.Context, sku string, d time.Duration) (sold, rejected uint64) {
	ctx, cancel := context.WithTimeout(ctx, max(d, 2*time.Second))
	defer cancel()
	var soldN, rejN atomic.Uint64
	var wg sync.WaitGroup
	for w := 0; w < 4*r.o.Shoppers; w++ {
		s := r.env.sites[w%len(r.env.sites)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.flashShopper(ctx, s, w, sku, &soldN, &rejN)
		}()
	}
	wg.Wait()
	return soldN.Load(), rejN.Load()
}

// think pauses a shopper, or returns early when ctx ends.
func think(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (r *run) report(res *Result) {
	if r.o.JSON {
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Fprintln(r.o.Out, string(b))
		return
	}
	fmt.Fprintf(r.o.Out, "\nsummary: %d holds granted, %d rejected for lack of stock, %d other errors, %d borrows, %.0f holds/s, p99 %.1f ms\n",
		res.Holds, res.Rejected, res.Errors, res.Borrows, res.HoldsPerSec, res.P99Ms)
	for _, c := range res.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(r.o.Out, "  [%s] %-34s %s\n", mark, c.Name, c.Detail)
	}
	fmt.Fprintln(r.o.Out, res.KeyValues())
}

var _ = escrow.Held
