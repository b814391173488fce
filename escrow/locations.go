package escrow

// Stock by location. The escrow key generalises from a SKU to a stock key
// (SKU, location): StockKey(sku, loc) is sku + "\x1f" + loc, and the
// default location "" is the SKU itself, so that data, wire and clients
// of a cluster without locations stay exactly as they were. Every stock
// key is a bounded counter of its own (rows, borrow, top-up, rebalancer,
// waitlist, homes all work on keys), and a hold's Lines name stock keys:
// the location of every granted unit is in the hold, and confirm, release
// and expiry return units to exactly those keys.
//
// A cart line may restrict itself to eligible locations (LineLocations);
// the node allocates it here (allocate) from its own slices, in preference
// order or most stock first, split over locations only when the line
// allows it. A region sells only from locations whose Sellers name it and
// receives quota only of those (checked on borrow, advice and homes).

import (
	"sort"
	"strings"
)

const (
	// LocationSep separates a SKU from its location in a stock key. SKUs
	// are printable, so no SKU contains it.
	LocationSep = "\x1f"
	// MaxLocationLen bounds a location id: 1–32 bytes of [a-z0-9_-].
	MaxLocationLen = 32
	// MaxStockKeyLen bounds a stock key.
	MaxStockKeyLen = MaxSKULen + 1 + MaxLocationLen
	// MaxLocations bounds the configured locations of a cluster, and so
	// the location label of metrics and the locations of one SKU's view.
	MaxLocations = 64
	// MaxLineLocations bounds the eligible locations of one cart line.
	MaxLineLocations = 16
)

// Allocation strategies of a region (Config.Allocation).
const (
	AllocPreference = "preference" // first eligible location that covers the line
	AllocMostStock  = "most_stock" // the eligible location with the most units here first
)

// Location is a place stock ships from: a warehouse or a store, owned by
// one region; Sellers are the regions that may sell its units (none: the
// owner alone).
type Location struct {
	ID      string
	Owner   string
	Sellers []string
}

// LineLocations restricts the cart line of SKU to eligible locations, in
// preference order (nil: the region's fulfilment order), and allows it to
// be split over several of them.
type LineLocations struct {
	SKU       string
	Locations []string
	Split     bool
}

// StockKey is the escrow key of sku at location loc ("" = default).
func StockKey(sku, loc string) string {
	if loc == "" {
		return sku
	}
	return sku + LocationSep + loc
}

// SplitStockKey returns the SKU and location of a stock key.
func SplitStockKey(key string) (sku, loc string) {
	if i := strings.IndexByte(key, LocationSep[0]); i >= 0 {
		return key[:i], key[i+1:]
	}
	return key, ""
}

// KeyName is a stock key as people read it: the SKU, and " at <location>"
// for a location other than the default.
func KeyName(key string) string {
	if sku, loc := SplitStockKey(key); loc != "" {
		return sku + " at " + loc
	}
	return key
}

// HasLocation reports whether key names a location other than the default.
func HasLocation(key string) bool { return strings.IndexByte(key, LocationSep[0]) >= 0 }

// ValidLocation checks a location id: 1–32 bytes of [a-z0-9_-].
func ValidLocation(l string) *Error {
	if l == "" || len(l) > MaxLocationLen {
		return errorf(CodeInvalid, "location %q must be 1 to %d bytes", l, MaxLocationLen)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return errorf(CodeInvalid, "location %q may contain only a-z, 0-9, _ and -", l)
		}
	}
	return nil
}

// ValidStockKey checks a stock key: a valid SKU, then optionally the
// separator and a valid location.
func ValidStockKey(key string) *Error {
	sku, loc := SplitStockKey(key)
	if err := ValidSKU(sku); err != nil {
		return err
	}
	if loc != "" || len(sku) != len(key) {
		return ValidLocation(loc)
	}
	return nil
}

// validLocations checks the location part of a Config.
func (c *Config) validLocations() *Error {
	if len(c.Locations) > MaxLocations {
		return errorf(CodeInvalid, "at most %d locations, got %d", MaxLocations, len(c.Locations))
	}
	seen := map[string]bool{}
	for _, l := range c.Locations {
		if err := ValidLocation(l.ID); err != nil {
			return err
		}
		if seen[l.ID] {
			return errorf(CodeInvalid, "location %q configured twice", l.ID)
		}
		seen[l.ID] = true
		if err := ValidRegion(l.Owner); err != nil {
			return errorf(CodeInvalid, "location %q owner: %s", l.ID, err.Detail)
		}
		for _, s := range l.Sellers {
			if err := ValidRegion(s); err != nil {
				return errorf(CodeInvalid, "location %q seller: %s", l.ID, err.Detail)
			}
		}
	}
	if len(c.FulfilmentOrder) > MaxLineLocations {
		return errorf(CodeInvalid, "fulfilment order names at most %d locations, got %d", MaxLineLocations, len(c.FulfilmentOrder))
	}
	for _, id := range c.FulfilmentOrder {
		if !seen[id] {
			return errorf(CodeInvalid, "fulfilment order names location %q, which is not configured", id)
		}
	}
	switch c.Allocation {
	case "", AllocPreference, AllocMostStock:
	default:
		return errorf(CodeInvalid, "allocation must be %q or %q, got %q", AllocPreference, AllocMostStock, c.Allocation)
	}
	return nil
}

// locationIndex is the configured locations by id.
type locationIndex map[string]*Location

func newLocationIndex(ls []Location) locationIndex {
	ix := make(locationIndex, len(ls))
	for i := range ls {
		ix[ls[i].ID] = &ls[i]
	}
	return ix
}

// maySell reports whether region r may sell (and so hold quota) of loc.
// The default location may be sold everywhere, as before locations.
func (ix locationIndex) maySell(loc, r string) bool {
	if loc == "" {
		return true
	}
	l := ix[loc]
	if l == nil {
		return false
	}
	if len(l.Sellers) == 0 {
		return l.Owner == r
	}
	for _, s := range l.Sellers {
		if s == r {
			return true
		}
	}
	return false
}

// keyMaySell reports whether region r may sell the units of stock key.
func (n *Node) keyMaySell(key, r string) bool {
	_, loc := SplitStockKey(key)
	return n.locs.maySell(loc, r)
}

// refuseLocation counts a refusal for a location this region or a peer
// may not sell from.
func (n *Node) refuseLocation() { n.stats.LocationRefused++ }

// checkStockKey checks a stock key of an admin command (restock, write-off,
// recount, stock view): a location must be configured; restock and
// recount need a region that owns or may sell it (mutate).
func (n *Node) checkStockKey(key string, mutate bool) *Error {
	if err := ValidStockKey(key); err != nil {
		return err
	}
	_, loc := SplitStockKey(key)
	if loc == "" {
		return nil
	}
	l := n.locs[loc]
	if l == nil {
		n.refuseLocation()
		return errorf(CodeInvalid, "location %q is not configured", loc)
	}
	if mutate && l.Owner != n.cfg.Region && !n.locs.maySell(loc, n.cfg.Region) {
		n.refuseLocation()
		return errorf(CodeInvalid, "region %s neither owns nor may sell from location %q", n.cfg.Region, loc)
	}
	return nil
}

// allocate turns a normalized cart into lines of stock keys: each line
// restricted to locations (c.Locations, or the fulfilment order) is given
// the locations its units come from; other lines keep their key. It fails,
// changing nothing but a counter, when a line names an unknown location or
// none this region may sell from. The result is normalized (sorted by
// key, no duplicates).
func (n *Node) allocate(c *Command, lines []Line) ([]Line, *Error) {
	if len(c.Locations) == 0 && len(n.cfg.FulfilmentOrder) == 0 && len(n.locs) == 0 {
		return lines, nil // no locations anywhere: the cart as it is
	}
	if len(c.Locations) > len(lines) {
		return nil, errorf(CodeInvalid, "locations given for %d lines of a %d-line cart", len(c.Locations), len(lines))
	}
	var out []Line
	changed := false
	for i := range lines {
		l := lines[i]
		ll := lineLocationsOf(c.Locations, l.SKU)
		if HasLocation(l.SKU) {
			// A line already allocated (a routed or forwarded hold).
			if ll != nil {
				return nil, errorf(CodeInvalid, "line %q names a location twice", l.SKU)
			}
			if !n.keyMaySell(l.SKU, n.cfg.Region) {
				n.refuseLocation()
				_, loc := SplitStockKey(l.SKU)
				return nil, errorf(CodeInvalid, "region %s may not sell from location %q", n.cfg.Region, loc)
			}
			out = append(out, l)
			continue
		}
		elig, split := n.cfg.FulfilmentOrder, false
		if ll != nil {
			split = ll.Split
			if len(ll.Locations) > 0 {
				elig = ll.Locations
			}
		}
		if len(elig) == 0 {
			out = append(out, l) // the default location
			continue
		}
		parts, err := n.allocateLine(l, elig, split)
		if err != nil {
			return nil, err
		}
		out = append(out, parts...)
		changed = true
	}
	if !changed {
		return out, nil
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SKU < out[j].SKU })
	if len(out) > MaxLines {
		return nil, errorf(CodeInvalid, "the cart allocated over locations has %d lines, over %d", len(out), MaxLines)
	}
	return out, nil
}

func lineLocationsOf(ls []LineLocations, sku string) *LineLocations {
	for i := range ls {
		if ls[i].SKU == sku {
			return &ls[i]
		}
	}
	return nil
}

// allocateLine allocates one line over its eligible locations elig.
func (n *Node) allocateLine(l Line, elig []string, split bool) ([]Line, *Error) {
	if len(elig) > MaxLineLocations {
		return nil, errorf(CodeInvalid, "line %s names %d locations, over %d", l.SKU, len(elig), MaxLineLocations)
	}
	type cand struct {
		key   string
		avail uint64
		glob  int64
	}
	cands := make([]cand, 0, len(elig))
	for i, loc := range elig {
		if err := ValidLocation(loc); err != nil {
			return nil, err
		}
		for _, prev := range elig[:i] {
			if prev == loc {
				return nil, errorf(CodeInvalid, "line %s names location %q twice", l.SKU, loc)
			}
		}
		if n.locs[loc] == nil {
			n.refuseLocation()
			return nil, errorf(CodeInvalid, "location %q is not configured", loc)
		}
		if !n.locs.maySell(loc, n.cfg.Region) {
			continue
		}
		k := StockKey(l.SKU, loc)
		c := cand{key: k}
		if s := n.lookup(k); s != nil {
			c.avail = n.available(s)
			for _, rec := range s.list {
				if a := s.availableOf(rec.Region); a > 0 {
					c.glob += a
				}
			}
		}
		cands = append(cands, c)
	}
	if len(cands) == 0 {
		n.refuseLocation()
		return nil, errorf(CodeInvalid, "region %s may sell %s from none of the locations %v", n.cfg.Region, l.SKU, elig)
	}
	if n.cfg.Allocation == AllocMostStock {
		sort.SliceStable(cands, func(i, j int) bool { return cands[i].avail > cands[j].avail })
	}
	// fallback: where units missing here are to be borrowed or waited
	// for: the candidate with the most units known anywhere (first in
	// order on a tie).
	fb := 0
	for i := range cands {
		if cands[i].glob > cands[fb].glob {
			fb = i
		}
	}
	if !split {
		for _, c := range cands {
			if c.avail >= l.Qty {
				return n.eligible([]Line{{SKU: c.key, Qty: l.Qty}}, elig), nil
			}
		}
		if n.cfg.bugs.GrantAnyLocation {
			for _, loc := range n.cfg.Locations {
				k := StockKey(l.SKU, loc.ID)
				if s := n.lookup(k); s != nil && n.available(s) >= l.Qty && n.locs.maySell(loc.ID, n.cfg.Region) {
					return []Line{{SKU: k, Qty: l.Qty}}, nil
				}
			}
		}
		return n.eligible([]Line{{SKU: cands[fb].key, Qty: l.Qty}}, elig), nil
	}
	qty := make([]uint64, len(cands))
	left := l.Qty
	for i, c := range cands {
		take := min(c.avail, left)
		qty[i] = take
		left -= take
	}
	qty[fb] += left // the rest is borrowed (or waited) for at the fallback
	var out []Line
	for i, c := range cands {
		if qty[i] > 0 {
			out = append(out, Line{SKU: c.key, Qty: qty[i]})
		}
	}
	if len(out) > 1 {
		n.stats.LocationSplitLines++
	}
	return n.eligible(out, elig), nil
}

// eligible asserts that every line of an allocation is at a location of
// elig that this region may sell from, and returns the lines (panics
// otherwise: a unit granted elsewhere would break the hold's contract).
func (n *Node) eligible(lines []Line, elig []string) []Line {
	for _, l := range lines {
		_, loc := SplitStockKey(l.SKU)
		ok := false
		for _, e := range elig {
			ok = ok || e == loc
		}
		if !ok || !n.locs.maySell(loc, n.cfg.Region) {
			panic("escrow: allocation outside the eligible locations: " + l.SKU)
		}
	}
	return lines
}

// checkHoldLocations asserts, for a hold about to be granted, that every
// line is a key this region may sell: a grant from any other location
// would give a shopper units the hold did not allow (panics: a bug).
func (n *Node) checkHoldLocations(lines []Line) {
	if n.cfg.bugs.GrantAnyLocation {
		return
	}
	for i := range lines {
		if !n.keyMaySell(lines[i].SKU, n.cfg.Region) {
			panic("escrow: grant from location not sellable here: " + lines[i].SKU)
		}
	}
}

// locationStock returns the per-location view of sku (a SKU, not a stock
// key of a location): every configured location known here, by id.
func (n *Node) locationStock(sku string) []LocationStock {
	if HasLocation(sku) || len(n.locs) == 0 {
		return nil
	}
	var out []LocationStock
	for i := range n.cfg.Locations {
		loc := n.cfg.Locations[i].ID
		s := n.lookup(StockKey(sku, loc))
		if s == nil || len(s.list) == 0 {
			continue
		}
		v := n.stockView(s)
		out = append(out, LocationStock{Location: loc, Available: v.Available, Held: v.Held, Sold: v.Sold,
			Global: v.Global, Regions: v.Regions})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Location < out[j].Location })
	return out
}

// sellableMoves drops the moves that would send units of a location to a
// region that may not sell from it (in place).
func (r *Rebalancer) sellableMoves(ms []Move) []Move {
	return keepSellable(r.cfg.Locations, ms, func(m Move) (string, string) { return m.SKU, m.To })
}

// sellableHomes drops the homes in regions that may not sell their
// location (in place).
func (r *Rebalancer) sellableHomes(hs []Home) []Home {
	return keepSellable(r.cfg.Locations, hs, func(h Home) (string, string) { return h.SKU, h.Region })
}

// keepSellable keeps the items whose region may sell the location of their
// stock key (in place); without locations every item is kept.
func keepSellable[T any](locs []Location, xs []T, keyRegion func(T) (string, string)) []T {
	if len(locs) == 0 {
		return xs
	}
	ix := newLocationIndex(locs)
	w := 0
	for _, x := range xs {
		key, region := keyRegion(x)
		if _, loc := SplitStockKey(key); ix.maySell(loc, region) {
			xs[w] = x
			w++
		}
	}
	return xs[:w]
}
