package gossip

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestErrorCountersHaveSeriesAtStart: the decode, reject and drop counters
// export a zero series for every known reason before any error, so that
// alerts on their rate have something to evaluate.
func TestErrorCountersHaveSeriesAtStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	tr, err := newTransport(Config{URL: "x", Cluster: "c", Region: "eu", Logger: quietLog(), Registerer: reg},
		&captureInbox{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.unregister()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() != "reason" {
					continue
				}
				if got[mf.GetName()] == nil {
					got[mf.GetName()] = map[string]float64{}
				}
				got[mf.GetName()][lp.GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	for name, reasons := range map[string][]string{
		"holdfast_gossip_decode_errors_total": {"corrupt", "truncated", "oversized", "version"},
		"holdfast_gossip_rejected_total":      {"subject", "self", "non_member", "type", "replay"},
		"holdfast_gossip_dropped_total":       {"queue_full", "disconnected", "encode", "publish", "closed"},
	} {
		for _, r := range reasons {
			v, ok := got[name][r]
			if !ok {
				t.Errorf("%s{reason=%q}: no series before the first error", name, r)
			} else if v != 0 {
				t.Errorf("%s{reason=%q} = %v at start, want 0", name, r, v)
			}
		}
	}
}
