package sim

import (
	"bytes"
	"os"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

func mustRun(t testing.TB, o Options) *Result {
	t.Helper()
	r, err := Run(o)
	if err != nil {
		t.Fatalf("seed %d: %v", o.Seed, err)
	}
	return r
}

func TestQueueOrder(t *testing.T) {
	t.Parallel()
	var q queue
	for i, at := range []int64{5, 1, 3, 1, 5, 0, 3} {
		q.push(event{at: at, n: int32(i)})
	}
	var got []int32
	for q.len() > 0 {
		got = append(got, q.pop().n)
	}
	// by time, then by insertion order
	want := []int32{5, 1, 3, 2, 6, 0, 4}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pop order %v, want %v", got, want)
	}
}

// Two runs of the same seed produce the same trace and the same output;
// a sweep's output does not depend on the number of workers.
func TestDeterminism(t *testing.T) {
	t.Parallel()
	o := Options{Seed: 7, Regions: 4, Duration: time.Minute, Faults: FaultsAll, Workload: "flash", Wire: true}
	a, b := mustRun(t, o), mustRun(t, o)
	if a.TraceHash != b.TraceHash || a.Events != b.Events {
		t.Fatalf("seed 7: traces differ: %x/%d vs %x/%d", a.TraceHash, a.Events, b.TraceHash, b.Events)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("seed 7: results differ:\n%+v\n%+v", a, b)
	}
	var t1, t2 bytes.Buffer
	if _, err := RunTrace(o, &t1); err != nil {
		t.Fatal(err)
	}
	if _, err := RunTrace(o, &t2); err != nil {
		t.Fatal(err)
	}
	if t1.Len() == 0 || !bytes.Equal(t1.Bytes(), t2.Bytes()) {
		t.Fatalf("seed 7: event traces differ (%d vs %d bytes)", t1.Len(), t2.Len())
	}
	o.Seed = 8
	if c := mustRun(t, o); c.TraceHash == a.TraceHash {
		t.Fatalf("seeds 7 and 8 have the same trace %x", a.TraceHash)
	}
	text := func(workers int) string {
		rs, err := Sweep(o, 1, 3, workers)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		WriteText(&buf, o, rs)
		buf.WriteString(Summarize(rs).KV())
		if err := WriteJSON(&buf, o, rs); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	if x, y := text(1), text(3); x != y {
		t.Fatalf("sweep output depends on workers:\n%s\n----\n%s", x, y)
	}
}

// Each checker must be able to fail: with a known bug injected, it reports
// it within a small fixed set of seeds.
func TestCheckersCatchBugs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		bug     string
		opts    Options
		checker func(r *Result) uint64
	}{
		{BugGrantWithoutCheck, Options{Workload: "flash"}, func(r *Result) uint64 { return r.Oversell }},
		{BugGrantWithoutCheck, Options{Workload: "flash"}, func(r *Result) uint64 { return r.ConservationErrors }},
		{BugMergeBySum, Options{}, func(r *Result) uint64 { return r.Unconverged }},
		{BugKeepExpiredUnits, Options{}, func(r *Result) uint64 { return r.Unreturned }},
		{BugReplyBeforePersist, Options{}, func(r *Result) uint64 { return r.LostAcked }},
		{BugPartialRecordsAsked, Options{Workload: "flash", Partial: 0.5}, func(r *Result) uint64 { return r.Unreturned }},
		{BugDuplicateEvent, Options{Faults: FaultsAll}, func(r *Result) uint64 { return r.EventErrors }},
	}
	for _, c := range cases {
		t.Run(c.bug, func(t *testing.T) {
			o := c.opts
			o.Regions, o.Duration = 3, time.Minute
			if err := o.SetBug(c.bug); err != nil {
				t.Fatal(err)
			}
			for seed := uint64(1); seed <= 3; seed++ {
				o.Seed = seed
				r := mustRun(t, o)
				if c.checker(r) > 0 && r.Failed() {
					t.Logf("seed %d: caught: %v", seed, r.Failures[:min(2, len(r.Failures))])
					return
				}
			}
			t.Fatalf("bug %s not caught by its checker on seeds 1-3", c.bug)
		})
	}
}

// TestSweep runs every strategy under every fault level and expects every
// checker to pass. HOLDFAST_SIM_SEEDS=N (e.g. 200) makes it a long sweep:
//
//	HOLDFAST_SIM_SEEDS=200 go test ./sim -run Sweep -timeout 1h
func TestSweep(t *testing.T) {
	t.Parallel()
	seeds, dur := sweepSize(t)
	for _, strat := range []string{"escrow", "static", "central"} {
		for _, wl := range Workloads {
			if strat == "central" && wl == workloadLocations {
				continue // refused by Validate: one region cannot sell every location
			}
			sweepOK(t, strat+"/"+wl, Options{Strategy: strat, Workload: wl, Faults: FaultsAll, Regions: 4, Duration: dur}, seeds)
		}
	}
}

// sweepSize is the number of seeds and the duration of a test sweep: 2
// seeds of a minute (1 with -short), or HOLDFAST_SIM_SEEDS seeds of 5m.
func sweepSize(t *testing.T) (seeds uint64, dur time.Duration) {
	t.Helper()
	seeds, dur = 2, time.Minute
	if testing.Short() {
		seeds = 1
	}
	if v := os.Getenv("HOLDFAST_SIM_SEEDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("HOLDFAST_SIM_SEEDS=%q: want a positive number", v)
		}
		seeds, dur = uint64(n), 5*time.Minute
	}
	return seeds, dur
}

// sweepOK runs o on seeds 1..seeds and fails t, with the command that
// replays it, for every seed that breaks a checker or grants no hold.
func sweepOK(t *testing.T, what string, o Options, seeds uint64) {
	t.Helper()
	rs, err := Sweep(o, 1, seeds, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Failed() {
			t.Errorf("%s seed %d failed: %v\nreplay: holdfast sim %v", what, r.Seed, r.Failures, o.Args(r.Seed))
		}
		if r.Holds == 0 || r.Granted == 0 {
			t.Errorf("%s seed %d: no holds granted (%d carts)", what, r.Seed, r.Holds)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	bad := []Options{{Regions: 1}, {Regions: MaxRegions + 1}, {Faults: "some"}, {Workload: "x"},
		{Strategy: "nope"}, {Duration: time.Second}, {Rate: -1}}
	for _, o := range bad {
		if _, err := Run(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	if _, err := Sweep(Options{}, 5, 4, 1); err == nil {
		t.Error("inverted seed range accepted")
	}
}

// adviceDaemon is a stand-in for the rebalancer: it listens to digests and
// asks the region with the most available units of a SKU to send some to
// the one with the fewest. It shows that a daemon plugs in as one strategy.
type adviceDaemon struct {
	epoch   uint64
	avail   map[string]map[string]uint64 // sku -> region -> available
	digests int
}

func (d *adviceDaemon) Name() string             { return "rebalancer" }
func (d *adviceDaemon) Site() int                { return 1 }
func (d *adviceDaemon) TickEvery() time.Duration { return 2 * time.Second }
func (d *adviceDaemon) Delay() time.Duration     { return 5 * time.Millisecond }
func (d *adviceDaemon) Reset()                   { d.avail = nil }
func (d *adviceDaemon) Receive(now time.Time, m *escrow.Message) []escrow.Message {
	if m.Type != escrow.MsgDigest {
		return nil
	}
	d.digests++
	if d.avail == nil {
		d.avail = map[string]map[string]uint64{}
	}
	for _, s := range m.Digest {
		if d.avail[s.SKU] == nil {
			d.avail[s.SKU] = map[string]uint64{}
		}
		d.avail[s.SKU][m.From] = s.Available
	}
	return nil
}
func (d *adviceDaemon) Tick(now time.Time) []escrow.Message {
	if d.avail == nil {
		return nil
	}
	d.epoch++
	m := escrow.Message{Type: escrow.MsgAdvice, Epoch: uint64(now.UnixNano())}
	for _, sku := range []string{"sku0000", "sku0001"} {
		var hi, lo string
		for r, a := range d.avail[sku] {
			if hi == "" || a > d.avail[sku][hi] || (a == d.avail[sku][hi] && r < hi) {
				hi = r
			}
			if lo == "" || a < d.avail[sku][lo] || (a == d.avail[sku][lo] && r < lo) {
				lo = r
			}
		}
		if hi != lo && d.avail[sku][hi] > d.avail[sku][lo]+2 {
			m.Moves = append(m.Moves, escrow.Move{SKU: sku, From: hi, To: lo, Qty: (d.avail[sku][hi] - d.avail[sku][lo]) / 2})
		}
	}
	return []escrow.Message{m}
}

type adviceStrategy struct {
	escrowStrategy
	d *adviceDaemon
}

func (s adviceStrategy) Daemons(*Setup) []Daemon { return []Daemon{s.d} }

func TestDaemonStrategy(t *testing.T) {
	d := &adviceDaemon{}
	RegisterStrategy("test-advice", func() Strategy { return adviceStrategy{d: d} })
	defer delete(strategies, "test-advice")
	o := Options{Seed: 3, Strategy: "test-advice", Regions: 3, Duration: time.Minute, Faults: FaultsAll, Workload: "skew"}
	r := mustRun(t, o)
	if r.Failed() {
		t.Fatalf("failed: %v", r.Failures)
	}
	if d.digests == 0 {
		t.Fatal("the daemon heard no digest")
	}
	if d.epoch == 0 {
		t.Fatal("the daemon never ticked")
	}
}

func BenchmarkSim(b *testing.B) {
	o := Options{Regions: 5, Duration: 2 * time.Minute, Faults: FaultsAll, Workload: "flash"}
	var events uint64
	start := time.Now()
	for i := 0; i < b.N; i++ {
		o.Seed = uint64(i + 1)
		events += mustRun(b, o).Events
	}
	b.ReportMetric(float64(events)/time.Since(start).Seconds(), "events/s")
}

// staticProbeEmpty probes where a static strategy cannot deliver: the
// region with the fewest units, which may never borrow.
type staticProbeEmpty struct{ staticStrategy }

func (staticProbeEmpty) ProbeRegion(s *Setup, local []uint64) int { return argMin(local) }

// The liveness checker fails when a region cannot get units that exist
// elsewhere after heal.
func TestLivenessCheckerCatchesStuckStock(t *testing.T) {
	RegisterStrategy("test-static-probe-empty", func() Strategy { return staticProbeEmpty{} })
	defer delete(strategies, "test-static-probe-empty")
	for seed := uint64(1); seed <= 3; seed++ {
		r := mustRun(t, Options{Seed: seed, Strategy: "test-static-probe-empty", Regions: 3, Duration: time.Minute, Stock: 1, Rate: 0.1})
		if r.LivenessFailures > 0 {
			t.Logf("seed %d: caught: %v", seed, r.Failures[0])
			return
		}
	}
	t.Fatal("liveness checker never failed on seeds 1-3")
}

// Recording the report's series observes the run without changing it.
func TestSeriesDoesNotChangeRun(t *testing.T) {
	t.Parallel()
	o := Options{Seed: 4, Duration: time.Minute, Faults: FaultsAll}
	a := mustRun(t, o)
	o.Series = true
	b := mustRun(t, o)
	if b.Series == nil || len(b.Series.Points) < 100 {
		t.Fatalf("no series recorded")
	}
	b.Series = nil
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("series changed the run: %x/%d vs %x/%d", a.TraceHash, a.Events, b.TraceHash, b.Events)
	}
	var buf bytes.Buffer
	if err := WriteReport(&buf, o, mustRun(t, o), Summarize([]*Result{a})); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte("<svg")) || bytes.Contains(buf.Bytes(), []byte("<script")) {
		t.Fatal("report without inline SVG, or with script")
	}
}
