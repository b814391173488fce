package region

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// gatedApply is a memStorage whose Apply reports how many holds it writes
// and then waits for a release: the test decides when a batch is durable.
type gatedApply struct {
	*memStorage
	sizes   chan int
	release chan struct{}
}

func (g *gatedApply) Apply(p *escrow.Persist) error {
	g.sizes <- len(p.Holds)
	<-g.release
	return g.memStorage.Apply(p)
}

// openGated opens region eu on a gatedApply with cfg's other settings. At
// the test's end every Apply is let through first (Close writes what is
// left), then the region is closed.
func openGated(t *testing.T, cfg Config) (*Region, *gatedApply) {
	t.Helper()
	g := &gatedApply{memStorage: newMemStorage(), sizes: make(chan int, 16), release: make(chan struct{}, 16)}
	cfg.Name, cfg.Storage, cfg.Logger = "eu", g, quietLogger()
	r, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	t.Cleanup(func() {
		for range 16 {
			g.release <- struct{}{}
		}
	})
	return r, g
}

// holdA returns a caller that holds one unit of SKU A on r and sends the
// outcome to done.
func holdA(r *Region) func(done chan<- error) {
	return func(done chan<- error) {
		rep, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}})
		if err == nil && rep.Err != nil {
			err = rep.Err
		}
		done <- err
	}
}

// waitGranted waits until r's node has granted holds holds (stepped them).
func waitGranted(t *testing.T, r *Region, holds uint64) {
	t.Helper()
	eventually(t, 10*time.Second, "holds stepped", func() bool {
		var n uint64
		if err := r.Inspect(context.Background(), func(node *escrow.Node) { n = node.Stats().Granted }); err != nil {
			t.Fatal(err)
		}
		return n >= holds
	})
}

// TestLingerMergesReturningCallers drives the stepper's linger through its
// call site: after a batch that answered two callers, the first one back
// is not cut alone while the second is expected (the linger lasts half the
// write time, capped here by MaxLinger at 5s, so that in a run on time only
// the second caller's arrival ends it). A linger computed from the count of
// callers already reset (no linger at all) cuts the first caller's hold on
// its own. The first caller may be back before the stepper has taken back
// the batch that answered it: TestLingerEndsWhenCallersBack.
func TestLingerMergesReturningCallers(t *testing.T) {
	const lingerTestCap = 5 * time.Second // below next's 10s wait
	r, g := openGated(t, Config{MaxLinger: lingerTestCap})
	next := func(what string) int {
		t.Helper()
		select {
		case n := <-g.sizes:
			return n
		case <-time.After(10 * time.Second):
			t.Fatalf("no batch written: %s", what)
			return 0
		}
	}
	g.release <- struct{}{}
	if _, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 100}); err != nil {
		t.Fatal(err)
	}
	next("the restock")
	r.applyEWMA.Store(int64(2 * time.Hour)) // lingerFor(2+) = lingerTestCap
	hold := holdA(r)
	stepped := func(holds uint64) { t.Helper(); waitGranted(t, r, holds) }
	// One hold in flight (its Apply waits), then two callers stepped
	// behind it: once it is durable they are cut together, and that
	// batch answers both of them.
	c0, a, b := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	go hold(c0)
	if n := next("the first hold"); n != 1 {
		t.Fatalf("first batch writes %d holds, want 1", n)
	}
	go hold(a)
	go hold(b)
	stepped(3)
	g.release <- struct{}{}
	if n := next("the two callers' batch"); n != 2 {
		t.Fatalf("the two callers stepped behind the first batch were written %d at a time, want 2", n)
	}
	g.release <- struct{}{}
	for _, c := range []chan error{c0, a, b} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	// a comes back first; b is expected: a is not cut alone.
	go hold(a)
	stepped(4)
	select {
	case n := <-g.sizes:
		t.Fatalf("a batch of %d hold(s) was cut while a returning caller was expected (no linger)", n)
	default:
	}
	go hold(b)
	if n := next("the merged batch"); n != 2 {
		t.Fatalf("the returning callers were written %d at a time, want 2", n)
	}
	g.release <- struct{}{}
	for _, c := range []chan error{a, b} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
}

// TestReturningCount tells the callers of a cohort back from the others by
// the count their requests carry, whether they are stepped before or after
// the stepper takes the cohort's final batch back.
func TestReturningCount(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps func(c *returning) // the stepper's view, in order
		all   bool
	}{
		{"nobody expected", func(c *returning) { c.expect(1, 0) }, true},
		{"all back after the batch", func(c *returning) {
			c.expect(1, 2)
			c.stepped(1)
			c.stepped(1)
		}, true},
		{"one of two back after the batch", func(c *returning) {
			c.expect(1, 2)
			c.stepped(1)
		}, false},
		{"early callers count", func(c *returning) {
			c.stepped(1) // back before the stepper took the batch back
			c.expect(1, 2)
			c.stepped(1)
		}, true},
		{"all back before the batch", func(c *returning) {
			c.stepped(1)
			c.stepped(1)
			c.expect(1, 2)
		}, true},
		{"requests of the cohort before do not count", func(c *returning) {
			c.stepped(0)
			c.stepped(0)
			c.expect(1, 2)
		}, false},
		{"an older cohort's callers do not count", func(c *returning) {
			c.expect(1, 1)
			c.stepped(1)
			c.stepped(1) // a new caller, submitted after cohort 1 was answered
			c.stepped(1) // and one more
			c.expect(2, 2)
			c.stepped(1) // submitted before cohort 2 was answered
			c.stepped(2)
		}, false},
		{"the next cohort's count", func(c *returning) {
			c.expect(1, 1)
			c.stepped(1)
			c.expect(2, 2)
			c.stepped(2)
			c.stepped(2)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c returning
			tc.steps(&c)
			if got := c.all(); got != tc.all {
				t.Fatalf("all() = %v (back %d of %d at count %d), want %v", got, c.back, c.want, c.gen, tc.all)
			}
		})
	}
}

// TestLingerEndsWhenCallersBack: the first of two callers of a cohort is
// back before the stepper takes the cohort's batch back (held here by the
// syncer's test hook, as the syncer answers callers before it tells the
// stepper); the linger must end when the second one is back, not at its
// cap (an hour here, so a linger that waits for a caller who never comes
// fails the test's 10s wait). The count before this one counted the early
// caller twice (planted: returning.earlyTwice) and its linger always ran
// out: with 256 callers, more than half of a cohort were stepped before its
// batch was back.
func TestLingerEndsWhenCallersBack(t *testing.T) {
	t.Run("counted once", func(t *testing.T) {
		if err := lingerEndsWhenCallersBack(t, false); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("planted: counted twice", func(t *testing.T) {
		if err := lingerEndsWhenCallersBack(t, true); err == nil {
			t.Fatal("the planted double count was not caught")
		} else {
			t.Logf("caught: %v", err)
		}
	})
}

func lingerEndsWhenCallersBack(t *testing.T, earlyTwice bool) error {
	r, g := openGated(t, Config{MaxLinger: time.Hour})
	wait := 10 * time.Second
	if earlyTwice {
		wait = time.Second // the planted run waits for a batch that never comes
	}
	next := func(what string, within time.Duration) (int, error) {
		select {
		case n := <-g.sizes:
			return n, nil
		case <-time.After(within):
			return 0, fmt.Errorf("no batch written within %v: %s", within, what)
		}
	}
	inspect := func(f func()) {
		t.Helper()
		if err := r.Inspect(context.Background(), func(*escrow.Node) { f() }); err != nil {
			t.Fatal(err)
		}
	}
	inspect(func() { r.back.earlyTwice = earlyTwice })
	g.release <- struct{}{}
	if _, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := next("the restock", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	r.applyEWMA.Store(int64(4 * time.Hour)) // lingerFor(2+) = MaxLinger
	hold := holdA(r)
	stepped := func(holds uint64) { t.Helper(); waitGranted(t, r, holds) }
	// One hold in flight, two callers stepped behind it: one cohort of two.
	c0, a, b := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	go hold(c0)
	if n, err := next("the first hold", 10*time.Second); err != nil || n != 1 {
		t.Fatalf("first batch: %d holds, %v; want 1", n, err)
	}
	go hold(a)
	go hold(b)
	stepped(3)
	g.release <- struct{}{}
	if n, err := next("the two callers' batch", 10*time.Second); err != nil || n != 2 {
		t.Fatalf("the two callers' batch: %d holds, %v; want 2", n, err)
	}
	// The syncer answers a and b, then waits before it tells the stepper.
	told := make(chan struct{})
	f := func(*batch) { <-told }
	r.testBeforeDone.Store(&f)
	g.release <- struct{}{}
	for _, c := range []chan error{c0, a, b} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	go hold(a)
	stepped(4) // a is back early
	r.testBeforeDone.Store(nil)
	close(told)
	eventually(t, 10*time.Second, "the cohort's batch taken back", func() bool {
		var want int
		inspect(func() { want = r.back.want })
		return want > 0
	})
	select {
	case n := <-g.sizes:
		t.Fatalf("a batch of %d hold(s) was cut while a returning caller was expected", n)
	default:
	}
	go hold(b)
	n, err := next("the merged batch", wait)
	if err != nil {
		return err
	}
	if n != 2 {
		t.Fatalf("the returning callers were written %d at a time, want 2", n)
	}
	g.release <- struct{}{}
	for _, c := range []chan error{a, b} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	return nil
}
