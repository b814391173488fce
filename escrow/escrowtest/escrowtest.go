// Package escrowtest plants known bugs in the escrow core, for tests only:
// the property tests, the simulator's checker tests, the demo's audit test
// and the region's fence test use it to show that what guards against a bug
// does catch it. The switches are not part of escrow.Config, its YAML or any
// command line, and WithBugs refuses to plant one outside a test binary.
package escrowtest

import (
	"testing"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/escrow/internal/plantedbugs"
)

// Bugs are the planted-bug switches (see the fields).
type Bugs = plantedbugs.Bugs

// WithBugs returns cfg with b planted: every Node built from it, including
// those a region runtime builds, has those bugs. Zero Bugs return cfg
// unchanged, so callers can pass their options through unconditionally. It
// panics outside a test binary: a planted bug oversells.
func WithBugs(cfg escrow.Config, b Bugs) escrow.Config {
	if !b.Any() {
		return cfg
	}
	if !testing.Testing() {
		panic("escrowtest: planted bugs outside a test binary")
	}
	return plantedbugs.Plant(cfg, b).(escrow.Config)
}
