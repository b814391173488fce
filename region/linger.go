package region

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The linger waits for the callers a cohort answered: after a final batch
// is durable and answered, its callers usually come back at once, and the
// stepper waits (at most lingerFor) until all of them are stepped before it
// cuts the next final batch, so that one fsync carries them all.
//
// Which stepped requests come from those callers is told by a count, not
// by who they are: the syncer bumps Region.deliveries before it answers a
// cohort, and a request carries the count it saw when it was submitted
// (request.gen). A request with the cohort's count was submitted after
// its callers began to be answered. Many of them are stepped before the
// stepper takes the cohort's final batch back (the syncer answers the
// callers first): those count too. Counting every input stepped since the
// last final cut instead counted those early callers twice, so the linger
// waited for more callers than there were and always ran to its end.

// lingerFor is how long the stepper may wait for returning callers before
// it cuts the next batch: half a recent write, at most Config.MaxLinger.
// After a cohort that answered a single caller there is nobody to merge
// with: that caller may already be back, and waiting would only delay it.
func (r *Region) lingerFor(answered int) time.Duration {
	if r.cfg.MaxLinger < 0 || answered <= 1 {
		return 0
	}
	return min(time.Duration(r.applyEWMA.Load())/2, r.cfg.MaxLinger)
}

// returning counts, on the stepper, the requests stepped since the syncer
// began to answer cohort gen.
type returning struct {
	gen  uint64 // the cohort counted
	back int    // requests stepped that were submitted after it was answered
	want int    // callers it answered, once its final batch is back
	// earlyTwice (a planted bug, tests only): the count before this one,
	// which waited for the early callers twice.
	earlyTwice bool
}

// stepped counts a request submitted when Region.deliveries was gen.
func (c *returning) stepped(gen uint64) {
	switch {
	case gen > c.gen:
		c.gen, c.back = gen, 1
	case gen == c.gen:
		c.back++
	}
}

// expect starts the wait for the answered callers of cohort gen, whose
// final batch the stepper took back: the ones stepped already count.
func (c *returning) expect(gen uint64, answered int) {
	if gen > c.gen {
		c.gen, c.back = gen, 0
	}
	c.want = answered
	if c.earlyTwice {
		c.want += c.back
	}
	if gen < c.gen {
		// A later cohort was answered already: the next final batch is
		// cut only after this one is taken back, so this cannot happen;
		// nobody is waited for.
		c.want = 0
	}
}

// all reports whether every caller expected is back.
func (c *returning) all() bool { return c.back >= c.want }

// Why the stepper cut a final batch: the values of
// holdfast_commit_cuts_total's "reason" label.
const (
	cutNoLinger = iota // no linger was due (a lone caller, the first batch, max_linger < 0)
	cutBack            // every caller the last cohort answered was back
	cutExpired         // the linger ran out first
	cutFull            // max_batch inputs were stepped
)

var cutReasons = [...]string{cutNoLinger: "no_linger", cutBack: "callers_back", cutExpired: "linger_expired", cutFull: "full"}

// cutWhy reports whether the stepper cuts the final batch now, with
// stepped inputs and a linger until lingerUntil (zero: none), and why.
func (r *Region) cutWhy(stepped int, lingerUntil time.Time) (why int, cut bool) {
	switch {
	case stepped >= r.cfg.MaxBatch:
		return cutFull, true
	case lingerUntil.IsZero():
		return cutNoLinger, true
	case r.back.all():
		return cutBack, true
	case !time.Now().Before(lingerUntil):
		return cutExpired, true
	}
	return 0, false
}

// lingerCollectors are the metrics of the group commit's cuts.
func (r *Region) lingerCollectors() []prometheus.Collector {
	cs := make([]prometheus.Collector, 0, len(cutReasons))
	for why, reason := range cutReasons {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "holdfast_commit_cuts_total",
			Help:        "Synced batches the apply loop cut, by why: no linger was due, every caller the last batch answered was back, the linger ran out, or the batch was full (max_batch), since start.",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(r.cuts[why].Load()) }))
	}
	return cs
}
