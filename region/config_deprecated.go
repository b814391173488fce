package region

// warnDeprecated logs, once per Open, each deprecated setting in use.
// escrow.peers (escrow.Config.Peers) is the old name of members: it still
// fills the membership when members is empty, and is ignored otherwise.
func (r *Region) warnDeprecated() {
	e := r.cfg.Escrow
	switch {
	case len(e.Peers) > 0 && len(e.Members) > 0:
		r.log.Warn("escrow.peers is deprecated and ignored because members is set: remove it", "peers", e.Peers)
	case len(e.Peers) > 0:
		r.log.Warn("escrow.peers is deprecated: list the cluster's regions, this one included, under members", "peers", e.Peers)
	}
}
