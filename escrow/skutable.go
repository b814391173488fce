package escrow

// The node's SKUs live in slabs of skuStates allocated skuSlab at a time
// and never moved, so a *skuState stays valid for the node's life and an
// idle SKU costs its struct and a map slot, not a separate allocation
// rounded up to a size class (TestMemoryFootprint bounds the total).

const skuSlab = 1024

// skuTable holds every skuState in the order the node learned them: the
// order of SKUs(), repairs and the round-robin part of digests.
type skuTable struct {
	slabs [][]skuState
	n     int
}

// alloc returns a zeroed skuState at index t.len()-1 after the call.
func (t *skuTable) alloc() *skuState {
	i := t.n % skuSlab
	if i == 0 {
		t.slabs = append(t.slabs, make([]skuState, skuSlab))
	}
	t.n++
	s := &t.slabs[len(t.slabs)-1][i]
	s.slot = int32(t.n - 1)
	return s
}

func (t *skuTable) len() int { return t.n }

// at returns the i-th SKU learned, 0 <= i < t.len().
func (t *skuTable) at(i int) *skuState { return &t.slabs[i/skuSlab][i%skuSlab] }
