package region

import "github.com/prometheus/client_golang/prometheus"

// loneCollectors are the metrics of the lone commit (commitLone) and the
// inline commit (commitInline).
func (r *Region) loneCollectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_lone_commits_total",
			Help: "Batches of a lone caller that the apply loop's stepper wrote and answered itself (no hand-off to the committer), since start.",
		}, func() float64 { return float64(r.loneCommits.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_inline_commits_total",
			Help: "Batches of a lone caller that the caller's own goroutine stepped, wrote and answered while the apply loop was idle (inline_commit), since start.",
		}, func() float64 { return float64(r.inline.commits.Load()) }),
	}
}
