package soak

// The memory of every region process over time, from its /metrics: the Go
// heap in use, the collector's next target (GOGC: the heap may grow to
// about twice what is live before a collection), and Pebble's memtables
// and block cache. RSS (report.go) says how much the process holds; this
// says what holds it.

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// regionMem is one region's memory at one sample, in bytes.
type regionMem struct {
	up                                      bool
	heapInuse, nextGC, memtable, blockCache float64
}

// memMetrics are the samples read, by name (unlabelled samples only).
var memMetrics = []string{"go_memstats_heap_inuse_bytes", "go_memstats_next_gc_bytes",
	"holdfast_pebble_memtable_bytes", "holdfast_pebble_block_cache_bytes"}

type memRow struct {
	at   time.Duration
	vals []regionMem // one per region, in memSampler.names order
}

type memSampler struct {
	names []string
	urls  []string // metrics URL of every region
	mu    sync.Mutex
	rows  []memRow
}

func newMemSampler(names, urls []string) *memSampler {
	return &memSampler{names: names, urls: urls}
}

func (m *memSampler) sample(start time.Time) {
	row := memRow{at: time.Since(start)}
	for _, u := range m.urls {
		row.vals = append(row.vals, scrapeMem(u))
	}
	m.mu.Lock()
	m.rows = append(m.rows, row)
	m.mu.Unlock()
}

// scrapeMem reads one region's memory; not up when it does not answer.
func scrapeMem(url string) regionMem {
	resp, err := probeClient.Get(url)
	if err != nil {
		return regionMem{}
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return regionMem{}
	}
	v, err := parseMetrics(io.LimitReader(resp.Body, 16<<20), memMetrics)
	if err != nil || len(v) == 0 {
		return regionMem{}
	}
	return regionMem{up: true, heapInuse: v[memMetrics[0]], nextGC: v[memMetrics[1]],
		memtable: v[memMetrics[2]], blockCache: v[memMetrics[3]]}
}

// parseMetrics returns the values of the unlabelled samples named in
// names from a Prometheus text exposition.
func parseMetrics(r io.Reader, names []string) (map[string]float64, error) {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !want[name] {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = f
		}
	}
	return out, sc.Err()
}

// table writes, for every region at every sample, the heap in use, the
// GC's next target, the memtables and the block cache, in MiB; "down"
// while a region does not answer.
func (m *memSampler) table(w io.Writer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintf(w, "%8s", "t")
	for _, n := range m.names {
		fmt.Fprintf(w, " %24s", n)
	}
	fmt.Fprintf(w, "\n%8s", "")
	for range m.names {
		fmt.Fprintf(w, " %24s", "heap/gc target/mt/cache")
	}
	fmt.Fprintln(w)
	for _, row := range m.rows {
		fmt.Fprintf(w, "%8s", row.at.Round(time.Second))
		for _, v := range row.vals {
			if !v.up {
				fmt.Fprintf(w, " %24s", "down")
				continue
			}
			b := func(x float64) float64 { return x / (1 << 20) }
			fmt.Fprintf(w, " %24s", fmt.Sprintf("%.1f/%.1f/%.1f/%.1f", b(v.heapInuse), b(v.nextGC), b(v.memtable), b(v.blockCache)))
		}
		fmt.Fprintln(w)
	}
}
