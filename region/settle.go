package region

// StorageBusy reports whether the region's store is flushing memtables or
// compacting, for a benchmark that wants to measure after a bulk load has
// settled. A storage that is not Pebble is never busy.
func (r *Region) StorageBusy() bool {
	pm, ok := r.currentStorage().(pebbleMetricser)
	if !ok {
		return false
	}
	m := pm.Metrics()
	if m == nil {
		return false
	}
	return m.Compact.NumInProgress > 0 || m.Flush.NumInProgress > 0
}
