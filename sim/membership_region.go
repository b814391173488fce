package sim

// The membership fault (membership.go) on the region runtime
// (runtime_region.go). A real region reads its member list from its
// config file when its process starts; so does the simulated one: every
// boot of a region's Stepper (the cluster's creation, a restart of the
// operator's rolling restart, a crash's restart, the zombie) opens it
// with region.Config.Members as the operator's configuration of that
// region lists them now (membership.conf), and the region derives the
// node's membership from it (region.Config.withDefaults). The new region
// starts with fresh_probation set (as a region with peers over NATS has it
// by default): the region runtime, not the simulator, puts it on
// probation, and the probation checker (membership_check.go) watches what
// it writes.

import (
	"github.com/holdfast-io/holdfast/region"
)

// memberRegionConfig sets the membership of a region runtime's config
// before a boot: its member list, and the new region's probation.
func (w *world) memberRegionConfig(ep *endpoint, cfg *region.Config) {
	mb := w.mb
	if mb == nil || ep.idx >= w.nReg {
		return
	}
	// The operator's config lists the members (names only: an unsigned
	// cluster); the region fills the node's Members from it.
	cfg.Members = cfg.Members[:0]
	for _, m := range cfg.Escrow.Members {
		cfg.Members = append(cfg.Members, region.Member{Name: m})
	}
	cfg.Escrow.Members = nil
	if ep.idx == mb.joiner && !w.o.Hooks.SkipProbation {
		// Its store starts empty while it has peers: it refuses writes
		// until they say they never saw its rows (1.5 digest intervals
		// at least, at most the default maximum).
		cfg.FreshProbation = mbProbationMin
		cfg.FreshProbationMax = 0
	}
}

// regionBusy reports whether a region runtime's pipeline has a batch cut
// and not yet delivered (its rows are not all where its peers can have
// them): the removed region is not stopped then.
func (w *world) regionBusy(ep *endpoint) bool {
	rt := ep.rt
	return rt != nil && (rt.cutBusy || rt.syncBusy || rt.failed || rt.st == nil || rt.st.InFlight() > 0)
}
