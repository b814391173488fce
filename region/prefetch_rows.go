package region

// Callers read the rows of the SKUs their command names ahead of the
// stepper (Config.SKUPrefetch; the store's side and its safety rule are in
// store_rows_prefetch.go).

import "github.com/holdfast-io/holdfast/escrow"

// maxPrefetchLines bounds the SKUs one command reads ahead (a cart of
// more lines reads the rest on the stepper, as without the setting).
const maxPrefetchLines = 16

// wirePrefetch gives the node just built the store's residency hook and
// lets callers read ahead; with the setting off it leaves both unset.
func (r *Region) wirePrefetch(n *escrow.Node) {
	st, ok := r.storage.(*Store)
	if !ok || st.prefetch == nil {
		r.rowsAhead.Store(nil)
		return
	}
	n.SetResidencyHook(st.ResidencyHook())
	r.rowsAhead.Store(st)
}

// prefetchRows reads ahead the rows of the SKUs cmd names (on the
// caller's goroutine, before cmd is queued).
func (r *Region) prefetchRows(cmd *escrow.Command) {
	st := r.rowsAhead.Load()
	if st == nil {
		return
	}
	switch cmd.Kind {
	case escrow.CmdHold:
		for i := range min(len(cmd.Lines), maxPrefetchLines) {
			st.PrefetchRows(cmd.Lines[i].SKU)
		}
	case escrow.CmdRestock, escrow.CmdWriteOff, escrow.CmdStock, escrow.CmdRecount:
		st.PrefetchRows(cmd.SKU)
	}
}

// PrefetchStats returns the counters of the reads ahead (zero with
// Config.SKUPrefetch off).
func (r *Region) PrefetchStats() PrefetchStats {
	if st := r.rowsAhead.Load(); st != nil {
		return st.PrefetchStats()
	}
	return PrefetchStats{}
}
