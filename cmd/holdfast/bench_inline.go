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

// histogramValue is the sample count and sum of the histogram name in reg
// (zeros when absent), e.g. holdfast_fsync_seconds: over a window, the
// synced batches and the mean time from a batch's write to its fsync.
func histogramValue(reg prometheus.Gatherer, name string) (count uint64, sum float64) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, 0
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			count += m.GetHistogram().GetSampleCount()
			sum += m.GetHistogram().GetSampleSum()
		}
	}
	return count, sum
}

// counterByLabel is the counter name in reg by the values of its label
// (empty when absent), e.g. holdfast_commit_cuts_total by reason.
func counterByLabel(reg prometheus.Gatherer, name, label string) map[string]float64 {
	out := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					out[lp.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}
