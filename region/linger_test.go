package region

import (
	"context"
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

// TestLingerMergesReturningCallers drives the stepper's linger through its
// call site: after a batch that answered two callers, the first one back
// is not cut alone while the second is expected (the linger lasts half the
// write time, capped here by MaxLinger at 5s, so that in a run on time only
// the second caller's arrival ends it). A linger computed from the count of
// callers already reset (no linger at all) cuts the first caller's hold on
// its own. On a loaded machine the first caller may be back before the
// stepper has taken back the batch that answered it; it is then counted in
// the target twice (lingerAfter) and the two are cut together when the
// linger ends, which the 5s cap keeps within the test's wait.
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
	hold := func(done chan<- error) {
		rep, err := r.Do(context.Background(), escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}})
		if err == nil && rep.Err != nil {
			err = rep.Err
		}
		done <- err
	}
	stepped := func(holds uint64) {
		t.Helper()
		eventually(t, 10*time.Second, "holds stepped", func() bool {
			var n uint64
			if err := r.Inspect(context.Background(), func(node *escrow.Node) { n = node.Stats().Granted }); err != nil {
				t.Fatal(err)
			}
			return n >= holds
		})
	}
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
