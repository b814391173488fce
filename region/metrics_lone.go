package region

import "github.com/prometheus/client_golang/prometheus"

// loneCollectors are the metrics of the lone commit (commitLone).
func (r *Region) loneCollectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_lone_commits_total",
			Help: "Batches of a lone caller that the apply loop's stepper wrote and answered itself (no hand-off to the committer), since start.",
		}, func() float64 { return float64(r.loneCommits.Load()) }),
	}
}
