package escrow

// Idempotent stock commands: a restock or write-off may carry an
// idempotency key (a bulk import requires one on every such line), so a
// re-run of the same import after a crash applies nothing twice. The key is
// remembered in the same idempotency entries as holds' keys (IdemEntry,
// putIdem), persisted in the same Ready as the stock change it guards:
// either both are durable or neither is. A repeated key with the same
// request answers Replayed and changes nothing; with another request it is
// CodeIdempotencyReuse. Keys are remembered for IdemTTL (24 h by default):
// a re-run within that window is safe.
//
// The entry's HoldID is a marker, "<region>-s" for a restock and
// "<region>-w" for a write-off: a valid id of this region that no hold
// ever has (hold ids carry 18 characters after the dash), so the stored
// form and its load checks are unchanged.

// StockIdemID is the HoldID of the idempotency entry of a keyed restock or
// write-off in region.
func StockIdemID(region string, kind CommandKind) string {
	if kind == CmdWriteOff {
		return region + "-w"
	}
	return region + "-s"
}

// stockReplay handles c.IdemKey of a restock or write-off before it
// applies: it returns true when it answered c (an invalid key, a reuse, or
// a replay of an applied command).
func (n *Node) stockReplay(c *Command) bool {
	if c.IdemKey == "" {
		return false
	}
	if err := ValidIdemKey(c.IdemKey); err != nil {
		n.fail(c, err)
		return true
	}
	e := n.idemOf(c.IdemKey)
	if e == nil || !e.liveAt(n.now) {
		return false
	}
	if e.Hash != c.IdemHash || e.HoldID != StockIdemID(n.cfg.Region, c.Kind) {
		n.fail(c, errorf(CodeIdempotencyReuse, "idempotency key %q was used for a different request", c.IdemKey))
		return true
	}
	n.stats.Replayed++
	rep := Reply{ReqID: c.ReqID, Kind: c.Kind, Replayed: true}
	if s := n.lookup(c.SKU); s != nil {
		rep.Stock = n.stockView(s)
	}
	n.reply(rep)
	return true
}

// stockApplied remembers c.IdemKey (when set) in the Ready that holds the
// change c made.
func (n *Node) stockApplied(c *Command) {
	if c.IdemKey == "" || n.cfg.bugs.StockKeyNotKept {
		return
	}
	n.putIdem(&IdemEntry{Key: c.IdemKey, HoldID: StockIdemID(n.cfg.Region, c.Kind), Hash: c.IdemHash,
		Expires: n.now.Add(n.cfg.IdemTTL)})
}

// isStockIdem reports whether e is the key of a restock or write-off (not
// of a hold).
func (n *Node) isStockIdem(e *idemRec) bool {
	return e.RoutedTo == "" && (e.HoldID == StockIdemID(n.cfg.Region, CmdRestock) || e.HoldID == StockIdemID(n.cfg.Region, CmdWriteOff))
}
