package region

// GET of a retired hold. The node keeps an ended hold in memory for
// Escrow.HoldRetain, then retires it; the store keeps it, listable, for
// Config.HoldRetain (list.go). A GET the node answers "not found" for a
// hold of this region is therefore looked up in the store, so that a hold
// the client was told about stays readable (here and through a forward
// from another region) for as long as it is listable.

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/escrow"
)

// holdReader is implemented by storages that can read one hold (Store).
type holdReader interface {
	Hold(id string) (escrow.Hold, bool, error)
}

// Results of holdfast_hold_store_lookups_total.
const (
	lookupFound    = "found"     // an ended hold, answered from the store
	lookupMissing  = "not_found" // not in the store either: the 404 stands
	lookupNotEnded = "not_ended" // in the store but not ended: the node's answer stands
	lookupError    = "error"     // the store could not be read: the 404 stands
)

// getFromStore turns the node's not-found answer to a GET of one of this
// region's holds into the stored hold, when the store has it ended. Any
// other reply is returned unchanged.
func (r *Region) getFromStore(cmd *escrow.Command, rep escrow.Reply) escrow.Reply {
	if cmd.Kind != escrow.CmdGet || rep.Err == nil || rep.Err.Code != escrow.CodeNotFound {
		return rep
	}
	if owner, err := escrow.OwnerOf(cmd.HoldID); err != nil || owner != r.name {
		return rep
	}
	hr, ok := r.currentStorage().(holdReader)
	if !ok {
		return rep
	}
	h, found, err := hr.Hold(cmd.HoldID)
	switch {
	case err != nil:
		r.metrics.storeLookups.WithLabelValues(lookupError).Inc()
		r.log.Warn("reading a retired hold from the store", "hold", cmd.HoldID, "err", err)
		return rep
	case !found:
		r.metrics.storeLookups.WithLabelValues(lookupMissing).Inc()
		return rep
	case h.State == escrow.Held:
		// Only ended holds are retired: a held one missing from the node
		// is not ours to resurrect here.
		r.metrics.storeLookups.WithLabelValues(lookupNotEnded).Inc()
		return rep
	}
	r.metrics.storeLookups.WithLabelValues(lookupFound).Inc()
	return escrow.Reply{ReqID: rep.ReqID, Kind: escrow.CmdGet, Hold: &h}
}

func newStoreLookups() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "holdfast_hold_store_lookups_total",
		Help: "GETs of a hold the node no longer keeps in memory, looked up in the store, by result (found, not_found, not_ended, error).",
	}, []string{"result"})
}
