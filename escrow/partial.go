package escrow

// Partial holds: a hold request with Command.Partial set is granted, line
// by line, what this region can give each line once borrowing is over (the
// same borrow as an all-or-nothing hold: a partial hold first tries to get
// everything). A line granted nothing stays in Hold.Asked with no entry in
// Hold.Lines; a hold granted nothing at all is refused like any other.
//
// Safety: every granted quantity is min(asked, available) at the moment of
// the grant, so available never goes below zero, and the hold's Lines are
// exactly the units added to Reserved (the simulator's units checker and
// the property tests compare them).

// grantOrReject ends a hold that could not be granted in full: a partial
// one gets what is available here, an all-or-nothing one is refused.
//
// A partial hold never takes units a waiting entry is queued for (the
// waitlist's head-of-line rule, waitlist.go), and a partial hold that gets
// nothing here joins the waitlist when it asked to wait, for its lines as
// asked.
func (n *Node) grantOrReject(c *Command, lines []Line, waiters []uint64) {
	if c.Partial && !n.queuedFor(lines) && n.grantPartial(c, lines, waiters) {
		return
	}
	n.waitOrReject(c, lines, waiters)
}

// grantPartial grants each line of c min(asked, available here) and
// returns true, or changes nothing and returns false when no line can get
// a single unit.
func (n *Node) grantPartial(c *Command, lines []Line, waiters []uint64) bool {
	var granted []Line
	for i := range lines {
		s := n.lookup(lines[i].SKU)
		if s == nil {
			continue
		}
		g := min(lines[i].Qty, n.available(s))
		if g == 0 {
			continue
		}
		granted = append(granted, Line{SKU: lines[i].SKU, Qty: g})
	}
	if len(granted) == 0 {
		return false
	}
	recorded := granted
	if n.cfg.bugs.PartialRecordsAsked {
		// The planted bug: the hold says it got what it asked for while
		// only the available units were reserved.
		recorded = make([]Line, 0, len(granted))
		for _, g := range granted {
			for _, l := range lines {
				if l.SKU == g.SKU {
					recorded = append(recorded, l)
				}
			}
		}
	}
	for _, g := range granted {
		s := n.lookup(g.SKU)
		own := n.ownRow(s)
		own.Reserved += g.Qty
		n.touchOwn(own)
		if s.availableOf(n.cfg.Region) < 0 {
			panic("escrow: partial grant drove available below zero")
		}
		n.noteLow(s)
	}
	n.stats.Partial++
	n.granted(c, n.newHold(c, recorded, lines), waiters)
	return true
}

// ValidCart checks a cart reference: at most MaxCartLen bytes of printable
// ASCII without spaces (empty: none).
func ValidCart(c string) *Error {
	if len(c) > MaxCartLen {
		return errorf(CodeInvalid, "cart must be at most %d bytes, got %d", MaxCartLen, len(c))
	}
	for i := 0; i < len(c); i++ {
		if c[i] < 0x21 || c[i] > 0x7e {
			return errorf(CodeInvalid, "cart may contain only printable ASCII without spaces")
		}
	}
	return nil
}

// checkAsked checks the asked lines of a stored partial hold against its
// granted lines: both normalized, every granted line asked for, no line
// granted more than it asked.
func checkAsked(granted, asked []Line) error {
	norm, err := NormalizeLines(asked)
	if err != nil {
		return err
	}
	if len(norm) != len(asked) {
		return errorf(CodeInvalid, "asked lines are not normalized")
	}
	for i := range norm {
		if norm[i] != asked[i] {
			return errorf(CodeInvalid, "asked lines are not normalized")
		}
	}
	j := 0
	for _, g := range granted {
		for j < len(asked) && asked[j].SKU < g.SKU {
			j++
		}
		if j == len(asked) || asked[j].SKU != g.SKU || g.Qty > asked[j].Qty {
			return errorf(CodeInvalid, "line %s granted %d, more than asked for", g.SKU, g.Qty)
		}
	}
	return nil
}
