package soak

// Resource samples of every process over time, and the final report.

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

type sampleRow struct {
	at   time.Duration
	vals []usage // one per process, in sampler.procs order
}

type sampler struct {
	procs []*proc
	mem   *memSampler // the regions' memory from their metrics (memstats.go); may be nil
	mu    sync.Mutex
	rows  []sampleRow
}

func newSampler(ps []*proc) *sampler { return &sampler{procs: ps} }

func (s *sampler) sample(start time.Time) {
	row := sampleRow{at: time.Since(start)}
	for _, p := range s.procs {
		row.vals = append(row.vals, sampleProc(p.pid()))
	}
	s.mu.Lock()
	s.rows = append(s.rows, row)
	s.mu.Unlock()
	if s.mem != nil {
		s.mem.sample(start)
	}
}

func (s *sampler) run(ctx context.Context, start time.Time, every time.Duration) {
	for {
		s.sample(start)
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// table writes RSS and its anonymous part (MiB) and open file descriptors
// of every process at every sample; "down" while a process is not running.
func (s *sampler) table(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(w, "%8s", "t")
	for _, p := range s.procs {
		fmt.Fprintf(w, " %16s", p.name)
	}
	fmt.Fprintf(w, "\n%8s", "")
	for range s.procs {
		fmt.Fprintf(w, " %16s", "rss/anon MiB/fds")
	}
	fmt.Fprintln(w)
	for _, r := range s.rows {
		fmt.Fprintf(w, "%7.0fs", r.at.Seconds())
		for _, u := range r.vals {
			if !u.up {
				fmt.Fprintf(w, " %16s", "down")
				continue
			}
			fmt.Fprintf(w, " %16s", fmt.Sprintf("%.1f/%.1f/%d", mib(u.rssKB), mib(u.anonKB), u.fds))
		}
		fmt.Fprintln(w)
	}
}

// ranges writes, per process, the least and most RSS and descriptors seen.
func (s *sampler) ranges(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.procs {
		var lo, hi usage
		n := 0
		for _, r := range s.rows {
			u := r.vals[i]
			if !u.up {
				continue
			}
			if n == 0 {
				lo, hi = u, u
			}
			lo.rssKB, hi.rssKB = min(lo.rssKB, u.rssKB), max(hi.rssKB, u.rssKB)
			lo.anonKB, hi.anonKB = min(lo.anonKB, u.anonKB), max(hi.anonKB, u.anonKB)
			lo.fds, hi.fds = min(lo.fds, u.fds), max(hi.fds, u.fds)
			n++
		}
		if n == 0 {
			fmt.Fprintf(w, "  %-11s no sample\n", p.name)
			continue
		}
		fmt.Fprintf(w, "  %-11s RSS %.1f–%.1f MiB (anonymous %.1f–%.1f), fds %d–%d (%d samples, %d starts)\n", p.name,
			mib(lo.rssKB), mib(hi.rssKB), mib(lo.anonKB), mib(hi.anonKB), lo.fds, hi.fds, n, p.starts)
	}
}

func mib(kb int64) float64 { return float64(kb) / 1024 }

func report(w io.Writer, cfg Config, res *Result, c *counts, l *Ledger, f *Final, s *sampler) {
	fmt.Fprintln(w, "\n== resources over time (RSS / its anonymous part in MiB / open fds, from /proc)")
	s.table(w)
	if s.mem != nil {
		fmt.Fprintln(w, "\n== region memory over time (Go heap in use / GC target / Pebble memtables / block cache in MiB, from /metrics)")
		s.mem.table(w)
	}
	fmt.Fprintln(w, "\n== resource ranges")
	s.ranges(w)
	c.mu.Lock()
	fmt.Fprintf(w, "\n== load\n  holds asked %d, acknowledged %d, refused %d, unanswered after retries %d; retries %d\n",
		c.asked, c.acked, c.refused, c.unack, c.retries)
	fmt.Fprintf(w, "  confirms %d, releases %d, abandoned %d; restocks %d, write-offs %d, admin answers lost %d\n",
		c.confirms, c.releases, c.abandons, c.restocks, c.writeOffs, c.adminLost)
	c.mu.Unlock()
	fmt.Fprintf(w, "  answers other than 2xx: %s\n", c.codeList())
	var in, held, sold int64
	for _, sku := range l.skus() {
		in += int64(l.Restocked[sku]) - int64(l.WrittenOff[sku])
		if st, ok := f.Stock[Regions[0]][sku]; ok {
			_, h, s := totals(l.Regions, st)
			held, sold = held+int64(h), sold+int64(s)
		}
	}
	fmt.Fprintf(w, "  units in (acknowledged restocks − write-offs) %d; at the end, in %s's view: sold %d, held %d\n",
		in, Regions[0], sold, held)
	fmt.Fprintf(w, "  holds read back %d, listed %d\n", len(f.Got), len(f.Listed))
	fmt.Fprintf(w, "\n== faults\n  kill -9: %d, partitions: %d (period %v, duration %v)\n", res.Kills, res.Partitions, cfg.Period, cfg.Duration)
	if res.Pass() {
		fmt.Fprintln(w, "\nPASS: conservation, no oversell, no lost acknowledged hold, one hold per idempotency key")
		return
	}
	v := append([]string(nil), res.Violations...)
	sort.Strings(v)
	// At most a few of each kind (the text before the first colon).
	const show = 5
	fmt.Fprintf(w, "\nFAIL: %d violations\n", len(v))
	kinds := map[string]int{}
	for _, x := range v {
		kind, _, _ := strings.Cut(x, ":")
		kinds[kind]++
		if n := kinds[kind]; n <= show {
			fmt.Fprintln(w, "  "+strings.TrimSpace(x))
		}
	}
	for kind, n := range kinds {
		if n > show {
			fmt.Fprintf(w, "  ... %d more of %s\n", n-show, kind)
		}
	}
}
