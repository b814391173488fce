package main

import "github.com/prometheus/client_golang/prometheus"

// counterValue is the sum of the counter name in reg (0 when absent): the
// bench reads the region's own metrics, e.g. holdfast_inline_commits_total,
// without a Region method for each.
func counterValue(reg prometheus.Gatherer, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v += m.GetCounter().GetValue()
		}
	}
	return v
}
