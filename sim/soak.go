package sim

import (
	"runtime"
	"time"
)

// A soak (Options.Soak, holdfast sim --soak 4h) runs hours of simulated
// time with long-lived holds (one shopper in twenty keeps a hold alive by
// heartbeats for 5 to 50 minutes, past the hold's maximum lifetime now and
// then) and many restock and expiry cycles: regions retire terminal holds
// and forget idempotency keys after soakRetain instead of a day, and keep
// soakMaxDonations borrow answers for dedupe instead of 100,000 (so the
// donation table turns over by count as well as by time), so that what
// they keep cycles within the run. Every soakEvery of simulated time
// the run samples what it keeps: the heap of the process, and the sizes
// of the simulated world (events queued, live holds of every region, the
// oracle's records). A flat soak keeps those flat; the checkers all stay
// at zero.
const (
	soakRetain = 5 * time.Minute
	soakForget = 5 * time.Minute // the oracle forgets deleted holds this long after
	// soakMaxDonations: escrow.Config.MaxDonations of a soak's regions.
	soakMaxDonations = 10_000
)

// SoakSample is one sample of a soak.
type SoakSample struct {
	Minute     int64  `json:"minute"`      // simulated minutes since the start
	HeapBytes  uint64 `json:"-"`           // runtime heap in use (not deterministic: stderr only)
	Queued     int    `json:"queued"`      // events in the queue
	LiveHolds  uint64 `json:"live_holds"`  // held holds over every region up
	KeptHolds  int    `json:"kept_holds"`  // holds, any state, the regions keep
	OracleRecs int    `json:"oracle_recs"` // holds the oracle keeps a record of
	Donations  uint64 `json:"donations"`   // borrow answers remembered by the regions up
}

// soakEvery is the sampling period: a simulated hour, or a quarter of a
// shorter soak.
func soakEvery(o *Options) time.Duration {
	return min(time.Hour, o.Duration/4)
}

// soakSample records one sample (observation only) and prunes what the
// oracle no longer needs.
func (w *world) soakSample() {
	w.orc.prune(w.now - int64(soakForget))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := SoakSample{Minute: w.now / int64(time.Minute), HeapBytes: ms.HeapAlloc, Queued: w.q.len(),
		OracleRecs: len(w.orc.holds)}
	for _, ep := range w.eps[:w.nReg] {
		s.KeptHolds += len(ep.dur.holds) // durable: kept while the region is down too
		if !ep.down {
			st := ep.node.Stats()
			s.LiveHolds += st.ActiveHolds
			s.Donations += st.Donations
		}
	}
	w.res.Soak = append(w.res.Soak, s)
	if w.o.SoakHook != nil {
		w.o.SoakHook(w.o.Seed, s)
	}
}

// prune forgets the holds deleted before t: their records, the replies
// about them and the idempotency keys that made them. A resurrection of a
// hold is then caught only within soakForget of its deletion.
func (o *oracle) prune(t int64) {
	for id, at := range o.deletedAt {
		if at >= t {
			continue
		}
		delete(o.deletedAt, id)
		delete(o.deleted, id)
		delete(o.holds, id)
		delete(o.evCreated, id)
		if a := o.acked[id]; a != nil {
			delete(o.acked, id)
		}
	}
	for k, id := range o.byIdem {
		if _, ok := o.holds[id]; !ok {
			delete(o.byIdem, k)
		}
	}
	for r, ids := range o.ackedBy {
		keep := ids[:0]
		for _, id := range ids {
			if o.acked[id] != nil {
				keep = append(keep, id)
			}
		}
		clear(ids[len(keep):])
		o.ackedBy[r] = keep
	}
}
