package soak

// Run: start the cluster, load it, inject a kill -9 and a partition every
// period, heal, wait for convergence, check, report.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/client"
)

// Config of one soak. Zero fields take the defaults.
type Config struct {
	Bin      string        // the holdfast binary the processes run (required)
	Dir      string        // work directory: configs, data, logs (required)
	Duration time.Duration // load and faults (10m)
	Period   time.Duration // one kill and one partition per period (1m)
	Shoppers int           // concurrent shoppers (8)
	SKUs     int           // SKUs (12)
	Stock    uint64        // initial units per SKU, all at one region (60)
	Think    time.Duration // mean pause of a shopper between requests (40ms)
	Seed     uint64        // seed of every random choice (1)
	Sample   time.Duration // resource sampling interval (Duration/20, at least 2s)
	Converge time.Duration // deadline for convergence after heal (60s)
	Out      io.Writer     // the report (os.Stdout)
	// EscrowYAML is the region configs' escrow section, indented by two
	// spaces (defaultEscrowYAML).
	EscrowYAML string
}

// defaultEscrowYAML tunes the regions for a soak: short memory of ended
// holds (so that GET and idempotent retries also meet holds only the
// store keeps), background top-up on.
const defaultEscrowYAML = `  low_water: 5
  top_up_horizon: 10s
  donor_floor: 2
  hold_retain: 20s
  idem_ttl: 20s
`

func (c Config) withDefaults() Config {
	if c.Duration <= 0 {
		c.Duration = 10 * time.Minute
	}
	if c.Period <= 0 {
		c.Period = time.Minute
	}
	c.Period = min(c.Period, c.Duration)
	if c.Shoppers <= 0 {
		c.Shoppers = 8
	}
	if c.SKUs <= 0 {
		c.SKUs = 12
	}
	if c.Stock == 0 {
		c.Stock = 60
	}
	if c.Think <= 0 {
		c.Think = 40 * time.Millisecond
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Sample <= 0 {
		c.Sample = max(2*time.Second, c.Duration/20)
	}
	if c.Converge <= 0 {
		c.Converge = time.Minute
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	if c.EscrowYAML == "" {
		c.EscrowYAML = defaultEscrowYAML
	}
	return c
}

// Result is the outcome of a soak.
type Result struct {
	Violations []string
	Kills      int
	Partitions int
}

// Pass reports whether no check failed.
func (r *Result) Pass() bool { return len(r.Violations) == 0 }

// Run runs one soak and writes its report to cfg.Out. The error is a
// failure to run (start, tooling); what the checks find is in Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	if cfg.Bin == "" || cfg.Dir == "" {
		return nil, errors.New("soak: Bin and Dir are required")
	}
	out := cfg.Out
	fmt.Fprintf(out, "soak: seed %d, duration %v, period %v, %d shoppers, %d SKUs, dir %s\n",
		cfg.Seed, cfg.Duration, cfg.Period, cfg.Shoppers, cfg.SKUs, cfg.Dir)
	cl, err := newCluster(cfg.Bin, cfg.Dir, cfg.EscrowYAML)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, err := range cl.stopAll() {
			fmt.Fprintf(out, "soak: stop: %v\n", err)
		}
	}()
	start := time.Now()
	if err := cl.start(ctx); err != nil {
		return nil, fmt.Errorf("soak: start: %w (logs in %s)", err, filepath.Join(cfg.Dir, "logs"))
	}
	fmt.Fprintf(out, "soak: cluster up in %v\n", time.Since(start).Round(time.Millisecond))

	res := &Result{}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x50a4))
	var clients []*client.Client
	for i := range Regions {
		c, err := client.New(cl.regionURL(i), client.Options{Timeout: 3 * time.Second})
		if err != nil {
			return nil, err
		}
		clients = append(clients, c)
	}
	var skus []string
	for i := range cfg.SKUs {
		skus = append(skus, fmt.Sprintf("soak-%02d", i))
	}
	book := &ledgerBook{l: Ledger{Regions: Regions, Restocked: map[string]uint64{}, RestockAmbiguous: map[string]uint64{},
		WrittenOff: map[string]uint64{}, WriteOffAmbiguous: map[string]uint64{}}}
	cnt := &counts{codes: map[string]int{}}
	for i, sku := range skus {
		if err := admin(ctx, clients[i%len(clients)], book, cnt, sku, int64(cfg.Stock)); err != nil {
			return nil, fmt.Errorf("soak: initial restock of %s: %w", sku, err)
		}
	}

	samp := newSampler(cl.procs())
	var names, urls []string
	for i, p := range cl.regions {
		names, urls = append(names, p.name), append(urls, cl.regionURL(i)+"/metrics")
	}
	samp.mem = newMemSampler(names, urls)
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range cfg.Shoppers {
		s := &shopper{id: i, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i+1))), clients: clients, skus: skus,
			think: cfg.Think, window: 15 * time.Second, ledger: book, cnt: cnt}
		wg.Go(func() { s.run(loadCtx) })
	}
	krng := rand.New(rand.NewPCG(cfg.Seed, 0x570c))
	wg.Go(func() {
		stockKeeper(loadCtx, krng, clients, skus, 500*time.Millisecond, 10, book, cnt)
	})
	wg.Go(func() { samp.run(loadCtx, start, cfg.Sample) })

	faultErr := runFaults(ctx, cfg, cl, rng, res, out, start)
	stopLoad()
	wg.Wait()
	fmt.Fprintf(out, "soak: load stopped at %v\n", time.Since(start).Round(time.Second))
	if faultErr != nil && ctx.Err() != nil {
		return nil, faultErr
	}
	if faultErr != nil {
		res.Violations = append(res.Violations, "faults: "+faultErr.Error())
	}

	// Heal everything and wait for the regions to agree.
	for _, l := range cl.links {
		l.proxy.Heal()
	}
	for i, p := range cl.regions {
		if p.pid() == 0 {
			if err := cl.startRegion(ctx, i); err != nil {
				res.Violations = append(res.Violations, "restart: "+err.Error())
			}
		}
	}
	healed := time.Now()
	var final *Final
	why := ""
	convErr := waitFor(ctx, cfg.Converge, "regions converge after heal", func() bool {
		f, err := readStock(ctx, clients, skus)
		if err != nil {
			why = err.Error()
			return false
		}
		final = f
		tmp := book.l
		v := CheckConvergedViews(&tmp, f)
		if len(v) > 0 {
			why = v[0]
		}
		return len(v) == 0
	})
	if convErr != nil {
		res.Violations = append(res.Violations, "convergence: "+convErr.Error()+"; last: "+why)
		if final == nil {
			final = &Final{Stock: map[string]map[string]api.Stock{}}
		}
	} else {
		fmt.Fprintf(out, "soak: converged %v after heal\n", time.Since(healed).Round(time.Millisecond))
	}
	samp.sample(start) // after heal, every process up
	if err := readHolds(ctx, clients, &book.l, final); err != nil {
		res.Violations = append(res.Violations, "listing: "+err.Error())
	}
	res.Violations = append(res.Violations, Check(&book.l, final)...)
	for _, p := range cl.procs() {
		if gone, err := p.exited(); gone {
			res.Violations = append(res.Violations, fmt.Sprintf("process %s ended on its own: %v", p.name, err))
		}
	}

	report(out, cfg, res, cnt, &book.l, final, samp)
	return res, nil
}

// runFaults kills a region with SIGKILL and cuts a link in every period,
// restarting and healing within the period.
func runFaults(ctx context.Context, cfg Config, cl *cluster, rng *rand.Rand, res *Result, out io.Writer, start time.Time) error {
	type event struct {
		at time.Duration
		do func() error
	}
	for k := 0; time.Duration(k)*cfg.Period < cfg.Duration; k++ {
		base := time.Duration(k) * cfg.Period
		victim := rng.IntN(len(cl.regions))
		l := cl.links[rng.IntN(len(cl.links))]
		p := cfg.Period
		events := []event{
			{base + p*15/100, func() error {
				fmt.Fprintf(out, "soak: %6.1fs kill -9 %s\n", time.Since(start).Seconds(), Regions[victim])
				res.Kills++
				return cl.regions[victim].kill9()
			}},
			{base + p*25/100, func() error {
				fmt.Fprintf(out, "soak: %6.1fs cut %s\n", time.Since(start).Seconds(), l)
				res.Partitions++
				l.proxy.Cut()
				return nil
			}},
			{base + p*40/100, func() error {
				fmt.Fprintf(out, "soak: %6.1fs restart %s\n", time.Since(start).Seconds(), Regions[victim])
				return cl.startRegion(ctx, victim)
			}},
			{base + p*50/100, func() error {
				// The cut must hold: no route between the two servers,
				// neither through the proxy nor around it.
				if cl.routed(l.a, l.b) || cl.routed(l.b, l.a) {
					return fmt.Errorf("link %s is cut but its servers are still routed: the partition leaks", l)
				}
				return nil
			}},
			{base + p*60/100, func() error {
				fmt.Fprintf(out, "soak: %6.1fs heal %s\n", time.Since(start).Seconds(), l)
				l.proxy.Heal()
				return nil
			}},
		}
		for _, e := range events {
			wait := time.Until(start.Add(e.at))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			if err := e.do(); err != nil {
				return err
			}
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(start.Add(cfg.Duration))):
	}
	return nil
}

// readStock reads every region's view of every SKU.
func readStock(ctx context.Context, clients []*client.Client, skus []string) (*Final, error) {
	f := &Final{Stock: map[string]map[string]api.Stock{}}
	for i, c := range clients {
		m := map[string]api.Stock{}
		for _, sku := range skus {
			st, err := c.Stock(ctx, sku)
			if err != nil {
				return nil, err
			}
			m[sku] = st.Stock
		}
		f.Stock[Regions[i]] = m
	}
	return f, nil
}

// readHolds reads every acknowledged hold through the region the shopper
// asked (which forwards to the owner), and lists every region's holds.
func readHolds(ctx context.Context, clients []*client.Client, l *Ledger, f *Final) error {
	f.Got, f.GetErr = map[string]api.Hold{}, map[string]string{}
	byName := map[string]*client.Client{}
	for i, c := range clients {
		byName[Regions[i]] = c
	}
	type job struct{ gw, id string }
	jobs := make(chan job)
	var mu sync.Mutex
	var wg sync.WaitGroup
	cnt := &counts{codes: map[string]int{}}
	for range 8 {
		wg.Go(func() {
			for j := range jobs {
				var h *client.Hold
				err := retry(ctx, 10*time.Second, cnt, func(ctx context.Context) error {
					var err error
					h, err = byName[j.gw].GetHold(ctx, j.id)
					return err
				})
				mu.Lock()
				switch {
				case err == nil:
					f.Got[j.id] = h.Hold
				case client.StatusOf(err) != 404:
					f.GetErr[j.id] = err.Error()
				}
				mu.Unlock()
			}
		})
	}
	for _, r := range l.Holds {
		for _, id := range r.AckedIDs {
			jobs <- job{r.Gateway, id}
		}
	}
	close(jobs)
	wg.Wait()
	for i, c := range clients {
		for h, err := range c.ListHolds(ctx, client.ListOptions{Limit: 1000}) {
			if err != nil {
				f.Listed = nil // CheckAckedHolds skips the listing check
				return fmt.Errorf("list the holds of %s: %w", Regions[i], err)
			}
			f.Listed = append(f.Listed, h)
		}
	}
	return nil
}
