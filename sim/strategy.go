package sim

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// Strategy is one way of placing and moving stock between regions. The
// simulator runs the same workload and faults under every strategy, so
// their metrics compare. A strategy is one file: implement the interface and
// call RegisterStrategy from an init function.
type Strategy interface {
	// Config adjusts the escrow configuration of region i before its node
	// is built (and rebuilt after a crash).
	Config(s *Setup, i int, cfg *escrow.Config)
	// Server returns the region whose node executes the commands of
	// clients of region home (initial stock and restocks of home too).
	// Another region than home means the gateway home forwards every
	// command to it over the simulated network.
	Server(s *Setup, home int) int
	// Allow reports whether the network carries message m at all; a
	// strategy that forbids transfers drops borrow requests here.
	Allow(s *Setup, m *escrow.Message) bool
	// ProbeRegion picks the region at which the post-heal liveness probe of
	// one SKU is issued, given each region's local available units; -1
	// skips the probe. The probe must be granted if the strategy is live.
	ProbeRegion(s *Setup, local []uint64) int
	// Daemons returns the non-region actors of the run (e.g. a rebalancer).
	Daemons(s *Setup) []Daemon
}

// Daemon is a non-region actor on the simulated network, such as the
// global rebalancer: it hears every broadcast (rows, digests), runs on its
// own ticks, may send messages (MsgAdvice) and may crash. The simulator
// delays its input by the network and its output by Delay, and calls Reset
// when it crashes.
type Daemon interface {
	// Name is its network address ([a-z0-9_], distinct from every region);
	// the From of the messages it sends.
	Name() string
	// Site is the index of the region it runs next to: it shares that
	// region's links, latencies and partitions.
	Site() int
	// TickEvery is its tick period (> 0).
	TickEvery() time.Duration
	// Tick and Receive return the messages to send (To "" = every region).
	Tick(now time.Time) []escrow.Message
	Receive(now time.Time, m *escrow.Message) []escrow.Message
	// Delay is its processing time before what it sends leaves.
	Delay() time.Duration
	// Reset forgets every in-memory state (a crash).
	Reset()
}

// Setup is what strategies may read about a run.
type Setup struct {
	Opts    Options // with defaults
	Regions []string
	SKUs    []string
	// Locations: the cluster's locations (workload locations; else none).
	Locations []escrow.Location
}

// StrategyFactory builds a strategy for one run.
type StrategyFactory func() Strategy

var strategies = map[string]StrategyFactory{}

// RegisterStrategy adds a strategy under name. It panics on a duplicate,
// which is a programming error caught by any test.
func RegisterStrategy(name string, f StrategyFactory) {
	if _, dup := strategies[name]; dup {
		panic("sim: strategy " + name + " registered twice")
	}
	strategies[name] = f
}

// Strategies returns the registered strategy names, sorted.
func Strategies() []string {
	out := make([]string, 0, len(strategies))
	for n := range strategies {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func newStrategy(name string) (Strategy, error) {
	f := strategies[name]
	if f == nil {
		return nil, fmt.Errorf("sim: unknown strategy %q (want one of %s)", name, strings.Join(Strategies(), ", "))
	}
	return f(), nil
}

func init() {
	RegisterStrategy("escrow", func() Strategy { return escrowStrategy{} })
	RegisterStrategy("static", func() Strategy { return staticStrategy{} })
	RegisterStrategy("central", func() Strategy { return centralStrategy{} })
}

// escrowStrategy is holdfast as designed: every region owns a slice,
// borrows on a miss and tops up below its low-water mark.
type escrowStrategy struct{}

func (escrowStrategy) Config(s *Setup, i int, cfg *escrow.Config) {
	perRegion := s.Opts.Stock / uint64(len(s.Regions))
	cfg.LowWater = max(2, perRegion/5)
	cfg.TopUpHorizon = 10 * time.Second
}
func (escrowStrategy) Server(s *Setup, home int) int            { return home }
func (escrowStrategy) Allow(s *Setup, m *escrow.Message) bool   { return true }
func (escrowStrategy) Daemons(s *Setup) []Daemon                { return nil }
func (escrowStrategy) ProbeRegion(s *Setup, local []uint64) int { return argMin(local) }

// staticStrategy gives each region a fixed slice and never moves units:
// borrow requests are dropped by the network, top-up is off.
type staticStrategy struct{}

func (staticStrategy) Config(s *Setup, i int, cfg *escrow.Config) {
	cfg.LowWater, cfg.TopUpHorizon = 0, -1 // top-up off
	// A miss is rejected at the next tick instead of after a deadline
	// nobody can meet.
	cfg.BorrowTimeout = time.Millisecond
}
func (staticStrategy) Server(s *Setup, home int) int { return home }
func (staticStrategy) Allow(s *Setup, m *escrow.Message) bool {
	return m.Type != escrow.MsgBorrowReq && m.Type != escrow.MsgAdvice
}
func (staticStrategy) Daemons(s *Setup) []Daemon { return nil }
func (staticStrategy) ProbeRegion(s *Setup, local []uint64) int {
	i := argMax(local)
	if local[i] == 0 {
		return -1
	}
	return i
}

// centralStrategy keeps all stock in one authority region (the first);
// every other region is a gateway that forwards each command to it, so a
// region cut off from the authority cannot sell at all.
type centralStrategy struct{}

func (centralStrategy) Config(s *Setup, i int, cfg *escrow.Config) {
	cfg.LowWater, cfg.TopUpHorizon = 0, -1 // top-up off
}
func (centralStrategy) Server(s *Setup, home int) int          { return 0 }
func (centralStrategy) Allow(s *Setup, m *escrow.Message) bool { return true }
func (centralStrategy) Daemons(s *Setup) []Daemon              { return nil }
func (centralStrategy) ProbeRegion(s *Setup, local []uint64) int {
	return len(s.Regions) - 1 // a gateway: the probe crosses the network
}

func argMin(v []uint64) int {
	best := 0
	for i := range v {
		if v[i] < v[best] {
			best = i
		}
	}
	return best
}

func argMax(v []uint64) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}
