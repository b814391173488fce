// Package regiontest holds test helpers of the region runtime: planting
// its known bugs (see region/internal/plantedbugs) so that tests and the
// simulator can show that they catch them. Never use it in production.
package regiontest

import (
	"testing"

	"github.com/holdfast-io/holdfast/region"
	"github.com/holdfast-io/holdfast/region/internal/plantedbugs"
)

// Bugs are the runtime bugs that can be planted.
type Bugs struct {
	// ReplyBeforeSync answers callers once their batch is written, before
	// its fsync.
	ReplyBeforeSync bool
}

// WithBugs returns cfg with bugs planted; zero Bugs return cfg unchanged.
// It panics outside a test binary: a planted bug loses acknowledged holds.
func WithBugs(cfg region.Config, bugs Bugs) region.Config {
	if bugs == (Bugs{}) {
		return cfg
	}
	if !testing.Testing() {
		panic("regiontest: planted bugs outside a test binary")
	}
	cfg.PlantedBugs = plantedbugs.Set{ReplyBeforeSync: bugs.ReplyBeforeSync}
	return cfg
}
