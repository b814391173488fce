package escrow

import "github.com/holdfast-io/holdfast/escrow/internal/plantedbugs"

// Planted bugs are switched on only through package escrowtest, which
// reaches Config's unexported field through this hook (see
// internal/plantedbugs for why it is a hook).
func init() {
	plantedbugs.Plant = func(cfg any, b plantedbugs.Bugs) any {
		c := cfg.(Config)
		c.bugs = b
		return c
	}
}
