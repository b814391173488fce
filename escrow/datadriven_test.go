package escrow

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// Stories: escrow/testdata/*.txt are scenarios run by
// github.com/cockroachdb/datadriven. Each step is a command, "----" and the
// node's real output; run `go test ./escrow -run TestDataDriven -rewrite` to
// regenerate the output after a deliberate change, then read the diff.
//
//	nodes eu us ap [digests=1s] [silence=3s] [lowwater=2]
//	                          regions (digests off unless digests= is given)
//	restock eu A 5            admin restock at eu
//	writeoff eu A 5
//	hold us A=1 B=2 [ttl=1m] [key=k] [as=h1] [routed]
//	confirm|release|get h1 [at=eu]
//	extend h1 5m
//	deliver                   deliver every message until quiet (cut links drop theirs)
//	drop                      lose every message in flight
//	partition eu us           cut the link between eu and us (both ways)
//	heal                      restore every link
//	tick 10m                  advance every clock and tick every node
//	gossip 1s                 tick, then deliver until quiet
//	wipe eu [probation]       eu restarts with an empty store under its name
//	                          (on probation, as a runtime with peers does)
//	copy eu                   keep a copy of eu's store (as a backup would)
//	restore eu [probation]    eu restarts from its copy (on restart probation,
//	                          as a runtime with restart_probation does)
//	claim us eu 1000          a digest from us says it saw eu's rows up to 1000
//	fence eu                  eu's fence status
//	rebalance                 the rebalancer reads the digests seen and advises
//	view eu A                 eu's view of A: one line per row
//	stock eu A                what eu's stock command answers
//	stats us
//	hold us A=1 wait=2m       may join the waitlist (waitlist.go)
//	waitget|waitcancel w1     a waitlist entry (named like holds)
//	waitlist eu               eu's waitlist entries, in placement order
//	holdback us borrow        take us's borrow requests in flight off the
//	                          network (a partition or pause holding them)
//	replay                    put the held-back messages on the network again
//	stalestats eu             eu's stale-borrow counters (borrow_stale.go)
//	nodes eu us cache=2       each node keeps at most 2 SKUs resident and
//	                          reads the others back from its store (skucache.go)
//	cache eu                  eu's resident SKUs (most recent first) and counters
//	nodes eu us holdcache=1   each node keeps at most 1 hold and 1 key resident
//	                          and reads the others from its store (holdcache.go)
//	holdcache eu              eu's resident holds and keys and counters
//	restart eu                eu restarts from its store
func TestDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		sc := &story{t: t, holds: map[string]string{}, reqs: map[reqKey]string{}, cut: map[[2]string]bool{}}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			sc.t = t
			return sc.run(d)
		})
	})
}

type reqKey struct {
	region string
	id     uint64
}

// story is the world of one story file.
type story struct {
	t     *testing.T
	tw    *tnet
	holds map[string]string // name -> hold id
	reqs  map[reqKey]string // waiting hold request -> name
	next  int
	cut   map[[2]string]bool // partitioned links, both orders
	rb    *Rebalancer
	// digests seen on the wire since the last rebalance, for the
	// rebalancer (which listens to every region's digests).
	digests []Message
	// lastDigest: the SKUs of each region's latest digest, in order.
	lastDigest map[string][]string
	// copies: the store copies of copy, by region.
	copies map[string]*State
	// heldBack: messages holdback took off the network, for replay.
	heldBack []tmsg
}

func (sc *story) node(r string) *tnode {
	tn := sc.tw.nodes[r]
	if tn == nil {
		sc.t.Fatalf("no region %q", r)
	}
	return tn
}

// run executes one step and returns its output followed by the answers to
// waiting holds that the step brought.
func (sc *story) run(d *datadriven.TestData) string {
	var pos []string
	opts := map[string]string{}
	var pairs []skuQty
	for _, a := range d.CmdArgs {
		switch {
		case len(a.Vals) == 0:
			pos = append(pos, locKey(a.Key))
		case a.Key == "locs" || a.Key == "order" || a.Key == "from":
			opts[a.Key] = strings.Join(a.Vals, ",")
		case a.Key == "alloc":
			opts[a.Key] = a.Vals[0]
		case a.Key == "ttl" || a.Key == "key" || a.Key == "wait" || a.Key == "as" || a.Key == "at" ||
			a.Key == "digests" || a.Key == "silence" || a.Key == "lowwater" || a.Key == "ifmatch" || a.Key == "unreachable" || a.Key == "digestskus" || a.Key == "cache" || a.Key == "holdcache":
			opts[a.Key] = a.Vals[0]
		default:
			pairs = append(pairs, skuQty{locKey(a.Key), a.Vals[0]})
		}
	}
	out := strings.TrimRight(sc.exec(d, pos, opts, pairs), "\n")
	if a := sc.answered(); a != "" {
		if out != "" {
			out += "\n"
		}
		out += a
	}
	return out
}

// skuQty is one SKU=qty line of a hold, as written.
type skuQty struct{ sku, qty string }

func (sc *story) exec(d *datadriven.TestData, args []string, opts map[string]string, pairs []skuQty) string {
	num := func(s string) uint64 {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			d.Fatalf(sc.t, "%v", err)
		}
		return v
	}
	dur := func(s string) time.Duration {
		v, err := time.ParseDuration(s)
		if err != nil {
			d.Fatalf(sc.t, "%v", err)
		}
		return v
	}
	switch d.Cmd {
	case "nodes":
		cfg := Config{}
		if v, ok := opts["digests"]; ok {
			cfg.DigestInterval = dur(v)
		}
		if v, ok := opts["silence"]; ok {
			cfg.PeerSilence = dur(v)
		}
		if v, ok := opts["lowwater"]; ok {
			cfg.LowWater = num(v)
		}
		if v, ok := opts["digestskus"]; ok {
			cfg.MaxDigestSKUs = int(num(v))
		}
		if v, ok := opts["cache"]; ok {
			cfg.MaxResidentSKUs = int(num(v)) // rows read back from each node's store
		}
		if v, ok := opts["holdcache"]; ok {
			cfg.MaxResidentHolds = int(num(v)) // holds and keys read back from each node's store
		}
		// locs=(id@owner+seller+...,...) order=(id,...) alloc=most_stock
		if v, ok := opts["locs"]; ok {
			for _, l := range strings.Split(v, ",") {
				id, regs, _ := strings.Cut(l, "@")
				rs := strings.Split(regs, "+")
				cfg.Locations = append(cfg.Locations, Location{ID: id, Owner: rs[0], Sellers: rs[1:]})
			}
		}
		if v, ok := opts["order"]; ok {
			cfg.FulfilmentOrder = strings.Split(v, ",")
		}
		cfg.Allocation = opts["alloc"]
		sc.tw = newTNet(sc.t, cfg, args...)
		return "ok"
	case "restock", "writeoff":
		k := CmdRestock
		if d.Cmd == "writeoff" {
			k = CmdWriteOff
		}
		r := sc.node(args[0]).do(Command{Kind: k, SKU: args[1], Qty: num(args[2])})
		sc.collect()
		if r.Err != nil {
			return "error " + r.Err.Code.String() + errDetail(r.Err)
		}
		return fmt.Sprintf("applied %d, available %d", r.Applied, r.Stock.Available)
	case "recount":
		// recount <region> <sku> <on_hand> at=<offset from t0-24h> [force] [ifmatch=<version>]
		c := Command{Kind: CmdRecount, SKU: args[1], OnHand: num(args[2]), AsOf: t0.Add(-24 * time.Hour).Add(dur(opts["at"])),
			IfMatch: opts["ifmatch"]}
		for _, a := range args[3:] {
			if a == "force" {
				c.Force = true
			}
		}
		r := sc.node(args[0]).do(c)
		sc.collect()
		if r.Err != nil {
			return "error " + r.Err.Code.String() + errDetail(r.Err)
		}
		rc := r.Recount
		out := fmt.Sprintf("before %d, delta %+d, applied %d, unresolved %d, available %d, held %d, version %s",
			rc.Before, rc.Delta, r.Applied, rc.Unresolved, r.Stock.Available, r.Stock.Held, r.Stock.Version)
		if rc.Forced {
			out += fmt.Sprintf(" (forced; stale %v)", rc.Stale)
		}
		return out
	case "hold":
		tn := sc.node(args[0])
		c := Command{Kind: CmdHold, IdemKey: opts["key"], IdemHash: 1}
		for _, p := range pairs {
			c.Lines = append(c.Lines, Line{SKU: p.sku, Qty: num(p.qty)})
		}
		if v, ok := opts["from"]; ok {
			// from=(loc,...): every line restricted to these locations
			for _, l := range c.Lines {
				c.Locations = append(c.Locations, LineLocations{SKU: l.SKU, Locations: strings.Split(v, ",")})
			}
		}
		for _, a := range args[1:] {
			switch a {
			case "split":
				for i := range c.Locations {
					c.Locations[i].Split = true
				}
				if len(c.Locations) == 0 {
					for _, l := range c.Lines {
						c.Locations = append(c.Locations, LineLocations{SKU: l.SKU, Split: true})
					}
				}
			case "routed":
				c.Routed = true
			case "partial":
				c.Partial = true
			default:
				d.Fatalf(sc.t, "hold: unknown flag %q", a)
			}
		}
		if v, ok := opts["ttl"]; ok {
			c.TTL = dur(v)
		}
		if v, ok := opts["wait"]; ok {
			c.Wait = dur(v)
		}
		name := opts["as"]
		if name == "" {
			sc.next++
			name = "h" + strconv.Itoa(sc.next)
		}
		tn.req++
		c.ReqID = tn.req
		// unreachable=REGION: the runtime just found REGION gone.
		if err := tn.n.Step(Input{Now: tn.now, Cmd: &c, Unreachable: opts["unreachable"]}); err != nil {
			sc.t.Fatal(err)
		}
		tn.drain()
		sc.collect()
		if r, ok := tn.replies[c.ReqID]; ok {
			return sc.holdReply(name, r)
		}
		sc.reqs[reqKey{args[0], c.ReqID}] = name // reported when answered
		return name + ": waiting"
	case "confirm", "release", "get", "extend":
		kinds := map[string]CommandKind{"confirm": CmdConfirm, "release": CmdRelease, "get": CmdGet, "extend": CmdExtend}
		id := sc.holds[args[0]]
		if id == "" {
			id = args[0]
		}
		owner, _ := OwnerOf(id)
		at := opts["at"]
		if at == "" {
			at = owner
		}
		c := Command{Kind: kinds[d.Cmd], HoldID: id}
		if d.Cmd == "extend" {
			c.TTL = dur(args[1])
		}
		r := sc.node(at).do(c)
		sc.collect()
		return sc.holdReply(args[0], r)
	case "waitget", "waitcancel":
		k := CmdWaitGet
		if d.Cmd == "waitcancel" {
			k = CmdWaitCancel
		}
		id := sc.holds[args[0]]
		if id == "" {
			id = args[0]
		}
		owner, _ := OwnerOf(id)
		r := sc.node(owner).do(Command{Kind: k, HoldID: id})
		sc.collect()
		return sc.holdReply(args[0], r)
	case "waitlist":
		tn := sc.node(args[0])
		if err := tn.n.checkWaitlist(); err != nil {
			d.Fatalf(sc.t, "%v", err)
		}
		var b strings.Builder
		for _, e := range tn.n.WaitEntries() {
			b.WriteString(sc.waitLine(sc.nameOf(e.ID), &e) + "\n")
		}
		if b.Len() == 0 {
			return "empty"
		}
		return b.String()
	case "deliver":
		return sc.deliver()
	case "drop":
		sc.collect()
		n := len(sc.tw.queue)
		sc.tw.queue = nil
		return fmt.Sprintf("dropped %d", n)
	case "holdback":
		sc.collect()
		kept := sc.tw.queue[:0]
		n := 0
		for _, q := range sc.tw.queue {
			if q.m.From == args[0] && q.m.Type.String() == args[1] {
				sc.heldBack = append(sc.heldBack, q)
				n++
				continue
			}
			kept = append(kept, q)
		}
		sc.tw.queue = kept
		return fmt.Sprintf("held back %d", n)
	case "replay":
		n := len(sc.heldBack)
		sc.tw.queue = append(sc.tw.queue, sc.heldBack...)
		sc.heldBack = nil
		return fmt.Sprintf("replayed %d", n)
	case "stalestats":
		s := sc.node(args[0]).n.Stats()
		return fmt.Sprintf("stale_refused=%d stale_answers=%d stale_reasked=%d donated=%d borrows=%d answered=%d timeouts=%d",
			s.BorrowStaleRefused, s.BorrowStaleAnswers, s.BorrowStaleReasked, s.DonatedUnits, s.BorrowsSent, s.BorrowsAnswered, s.BorrowTimeouts)
	case "partition":
		sc.cut[[2]string{args[0], args[1]}] = true
		sc.cut[[2]string{args[1], args[0]}] = true
		return "ok"
	case "heal":
		clear(sc.cut)
		return "ok"
	case "tick":
		sc.tick(dur(args[0]))
		return "ok"
	case "gossip":
		sc.tick(dur(args[0]))
		return sc.deliver()
	case "wipe":
		old := sc.node(args[0])
		tn := newTNode(sc.t, old.cfg)
		tn.now = old.now
		sc.tw.nodes[args[0]] = tn
		out := fmt.Sprintf("%s restarts empty: seq %d (was %d)", args[0], tn.n.Seq(), old.n.Seq())
		if len(args) > 1 && args[1] == "probation" && tn.n.BeginProbation(time.Second, time.Minute) {
			out += ", on probation"
		}
		return out
	case "copy":
		if sc.copies == nil {
			sc.copies = map[string]*State{}
		}
		tn := sc.node(args[0])
		sc.copies[args[0]] = tn.store.state(sc.t)
		return fmt.Sprintf("copied %s's store at seq %d", args[0], tn.n.Seq())
	case "restore":
		old, st := sc.node(args[0]), sc.copies[args[0]]
		if st == nil {
			sc.t.Fatalf("no copy of %s", args[0])
		}
		tn := newTNode(sc.t, old.cfg)
		n, err := NewNode(old.cfg, st)
		if err != nil {
			return "error " + err.Error()
		}
		tn.n, tn.now = n, old.now
		sc.tw.nodes[args[0]] = tn
		out := fmt.Sprintf("%s restarts from its copy: seq %d (was %d)", args[0], tn.n.Seq(), old.n.Seq())
		if len(args) > 1 && args[1] == "probation" && tn.n.BeginRestartProbation(time.Second, time.Minute) {
			out += ", on restart probation"
		}
		return out
	case "claim":
		from, to := args[0], sc.node(args[1])
		m := Message{Type: MsgDigest, From: from, Seq: sc.node(from).n.Seq(), Seen: []RegionSeq{{Region: args[1], Seq: num(args[2])}}}
		if err := to.n.Step(Input{Now: to.now, Msg: &m}); err != nil {
			return "error " + err.Error()
		}
		to.drain()
		sc.tw.collect()
		return ""
	case "fence":
		n := sc.node(args[0]).n
		f := n.Fence()
		switch {
		case f.Fenced && f.Probation:
			return "on probation"
		case !f.Fenced:
			return fmt.Sprintf("not fenced (lone claims %d, voices needed %d)", n.Stats().FenceClaims, n.FenceVoicesNeeded())
		}
		return fmt.Sprintf("fenced by %s: it saw our rows up to seq %d, our store has seq %d; voices %s", f.Peer, f.PeerSeen, f.OwnSeq, f.Voices)
	case "rebalance":
		return sc.rebalance()
	case "view":
		v := sc.node(args[0]).n.View(args[1])
		var b strings.Builder
		regions := make([]string, 0, len(v))
		for r := range v {
			regions = append(regions, r)
		}
		sort.Strings(regions)
		for _, r := range regions {
			row := v[r]
			fmt.Fprintf(&b, "%s: seq=%d minted=%d reserved=%d released=%d sold=%d shrunk=%d sent=%v available=%d\n",
				r, row.Seq, row.Minted, row.Reserved, row.Released, row.Sold, row.Shrunk, row.Sent, v.Available(r))
		}
		if err := v.CheckConservation(); err != nil {
			fmt.Fprintf(&b, "conservation: %v\n", err)
		}
		return b.String()
	case "stock":
		r := sc.node(args[0]).do(Command{Kind: CmdStock, SKU: args[1]})
		sc.collect()
		if r.Err != nil {
			return "error " + r.Err.Code.String() + errDetail(r.Err)
		}
		out := fmt.Sprintf("available %d", r.Stock.Available)
		for _, l := range r.Stock.Locations {
			out += fmt.Sprintf("\n%s: available %d held %d sold %d global %d", l.Location, l.Available, l.Held, l.Sold, l.Global)
		}
		return out
	case "digest":
		// The SKUs of the region's latest digest, in the order sent.
		sc.collect()
		return fmt.Sprintf("%s: %v", args[0], sc.lastDigest[args[0]])
	case "locstats":
		s := sc.node(args[0]).n.Stats()
		return fmt.Sprintf("location_refused=%d split_lines=%d", s.LocationRefused, s.LocationSplitLines)
	case "index":
		// The region's expiry index as a store keeps it from the Persists
		// alone (memStore), in deadline order, times from the story's start.
		return sc.expiryIndex(sc.node(args[0]))
	case "restart":
		sc.node(args[0]).restart()
		return "ok"
	case "cache":
		n := sc.node(args[0]).n
		if err := n.checkResidency(); err != nil {
			return "residency: " + err.Error()
		}
		s := n.Stats()
		var res []string
		for i := n.cache.head; i != noSlot; i = n.link(i).next {
			res = append(res, n.skuTab.at(int(i)).sku)
		}
		return fmt.Sprintf("resident=%d (%s) hits=%d misses=%d evictions=%d", s.SKUResident, strings.Join(res, " "),
			s.SKUCacheHits, s.SKUCacheMisses, s.SKUCacheEvictions)
	case "holdcache":
		n := sc.node(args[0]).n
		if err := n.checkHoldResidency(); err != nil {
			return "hold residency: " + err.Error()
		}
		var ids []string
		for id := range n.holds.all() {
			ids = append(ids, sc.holdName(id))
		}
		sort.Strings(ids)
		s := n.Stats()
		return fmt.Sprintf("holds=%d (%s) keys=%d active=%d hits=%d misses=%d evictions=%d", s.HoldsResident, strings.Join(ids, " "),
			s.KeysResident, s.ActiveHolds, s.HoldCacheHits, s.HoldCacheMisses, s.HoldCacheEvictions)
	case "stats":
		s := sc.node(args[0]).n.Stats()
		return fmt.Sprintf("granted=%d rejected=%d borrows=%d answered=%d timeouts=%d donated=%d expired=%d gaps=%d repairs=%d",
			s.Granted, s.Rejected, s.BorrowsSent, s.BorrowsAnswered, s.BorrowTimeouts, s.DonatedUnits, s.ExpiredHolds, s.Gaps, s.RepairsSent)
	}
	d.Fatalf(sc.t, "unknown command %q", d.Cmd)
	return ""
}

// collect queues what the nodes sent. The rebalancer hears every digest
// (it is not behind the regions' partitions): they are noted for it here,
// once each, before the broadcast is fanned out.
func (sc *story) collect() {
	for _, r := range sortedKeys(sc.tw.nodes) {
		for _, m := range sc.tw.nodes[r].sent {
			if m.Type == MsgDigest {
				sc.digests = append(sc.digests, m)
				if sc.lastDigest == nil {
					sc.lastDigest = map[string][]string{}
				}
				names := make([]string, 0, len(m.Digest))
				for _, d := range m.Digest {
					names = append(names, d.SKU)
				}
				sc.lastDigest[r] = names
			}
		}
	}
	sc.tw.collect()
}

// deliver delivers until quiet; a message on a cut link is lost.
func (sc *story) deliver() string {
	sc.collect()
	n, lost := 0, 0
	for len(sc.tw.queue) > 0 {
		if n+lost > 10000 {
			sc.t.Fatal("network never quiet")
		}
		q := sc.tw.queue[0]
		if sc.cut[[2]string{q.m.From, q.to}] {
			sc.tw.queue = sc.tw.queue[1:]
			lost++
			continue
		}
		sc.tw.queue = sc.tw.queue[1:]
		tn := sc.tw.nodes[q.to]
		if err := tn.n.Step(Input{Now: tn.now, Msg: &q.m}); err != nil {
			sc.t.Fatalf("%s rejected %s from %s: %v", q.to, q.m.Type, q.m.From, err)
		}
		tn.drain()
		sc.collect()
		n++
	}
	if lost > 0 {
		return fmt.Sprintf("%d messages, %d lost to the partition", n, lost)
	}
	return fmt.Sprintf("%d messages", n)
}

func (sc *story) tick(d time.Duration) {
	for _, r := range sortedKeys(sc.tw.nodes) {
		tn := sc.tw.nodes[r]
		tn.now = tn.now.Add(d)
		if err := tn.n.Step(Input{Now: tn.now}); err != nil {
			sc.t.Fatal(err)
		}
		tn.drain()
	}
	sc.collect()
}

// rebalance feeds the digests seen since the last round to the rebalancer
// (one per region and story), runs a round at the regions' clock and
// queues its advice to every region.
func (sc *story) rebalance() string {
	var now time.Time
	for _, tn := range sc.tw.nodes {
		if tn.now.After(now) {
			now = tn.now
		}
	}
	if sc.rb == nil {
		rb, err := NewRebalancer(RebalancerConfig{ID: "rb", Policy: DefaultRebalancePolicy()})
		if err != nil {
			sc.t.Fatal(err)
		}
		sc.rb = rb
	}
	for i := range sc.digests {
		if err := sc.rb.Step(now, &sc.digests[i]); err != nil {
			sc.t.Fatal(err)
		}
	}
	seen := len(sc.digests)
	sc.digests = nil
	adv, ok := sc.rb.Round(now)
	if !ok {
		return "standby"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "read %d digests\n", seen)
	for _, mv := range adv.Moves {
		fmt.Fprintf(&b, "move %s: %d from %s to %s\n", mv.SKU, mv.Qty, mv.From, mv.To)
	}
	for _, h := range adv.Homes {
		fmt.Fprintf(&b, "home of %s: %s\n", h.SKU, h.Region)
	}
	if len(adv.Moves) == 0 && len(adv.Homes) == 0 {
		b.WriteString("no advice\n")
	}
	for _, r := range sortedKeys(sc.tw.nodes) {
		sc.tw.queue = append(sc.tw.queue, tmsg{to: r, m: adv})
	}
	return b.String()
}

// answered reports waiting holds answered by the last command (a restock
// or a release can grant a hold that waited for units).
func (sc *story) answered() string {
	if sc.tw == nil {
		return ""
	}
	var lines []string
	for _, r := range sortedKeys(sc.tw.nodes) {
		tn := sc.tw.nodes[r]
		ids := make([]uint64, 0)
		for k := range sc.reqs {
			if _, ok := tn.replies[k.id]; ok && k.region == r {
				ids = append(ids, k.id)
			}
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, id := range ids {
			k := reqKey{r, id}
			lines = append(lines, fmt.Sprintf("%s: %s", r, sc.holdReply(sc.reqs[k], tn.replies[id])))
			delete(sc.reqs, k)
		}
	}
	return strings.Join(lines, "\n")
}

func errDetail(e *Error) string {
	s := ""
	if e.SKU != "" {
		s += fmt.Sprintf(" sku=%s available=%d", locName(e.SKU), e.Available)
	}
	if e.Code == CodeInvalid {
		s += ": " + e.Detail
	}
	if e.Owner != "" {
		s += " owner=" + e.Owner
	}
	return s
}

func (sc *story) holdReply(name string, r Reply) string {
	if r.Err != nil {
		return name + ": error " + r.Err.Code.String() + errDetail(r.Err)
	}
	if r.Wait != nil {
		if _, ok := sc.holds[name]; !ok {
			sc.holds[name] = r.Wait.ID
		}
		s := sc.waitLine(name, r.Wait)
		if r.Replayed {
			s += " replayed"
		}
		return s
	}
	h := r.Hold
	if _, ok := sc.holds[name]; !ok {
		sc.holds[name] = h.ID
	}
	var lines []string
	for _, l := range h.Lines {
		lines = append(lines, fmt.Sprintf("%s=%d", locName(l.SKU), l.Qty))
	}
	if h.Partial() {
		// granted/asked for every line asked for
		lines = lines[:0]
		for _, l := range h.Asked {
			lines = append(lines, fmt.Sprintf("%s=%d/%d", locName(l.SKU), h.GrantedOf(l.SKU), l.Qty))
		}
	}
	s := fmt.Sprintf("%s: %s %s expires=+%v", name, h.State, strings.Join(lines, ","), h.Expires.Sub(h.Created))
	if r.Replayed {
		s += " replayed"
	}
	return s
}

// waitLine prints a waitlist entry: state, lines, positions or hold.
func (sc *story) waitLine(name string, e *WaitEntry) string {
	var lines []string
	for _, l := range e.Lines {
		lines = append(lines, fmt.Sprintf("%s=%d", locName(l.SKU), l.Qty))
	}
	s := fmt.Sprintf("%s: %s #%d %s deadline=+%v", name, e.State, e.Seq, strings.Join(lines, ","), e.Deadline.Sub(e.Created))
	if len(e.Position) > 0 {
		s += fmt.Sprintf(" position=%v", e.Position)
	}
	if e.HoldID != "" {
		s += " hold=" + sc.nameOf(e.HoldID)
	}
	return s
}

// nameOf returns the story name of a hold or entry id, naming a hold first
// seen here (a promotion) p1, p2, ...
func (sc *story) nameOf(id string) string {
	best := ""
	for name, v := range sc.holds {
		if v == id && (best == "" || name < best) {
			best = name // a replay names the same id twice: the first name wins
		}
	}
	if best != "" {
		return best
	}
	sc.next++
	name := "p" + strconv.Itoa(sc.next)
	sc.holds[name] = id
	return name
}

// locKey writes a story's "SKU@location" as its stock key.
func locKey(s string) string {
	if sku, loc, ok := strings.Cut(s, "@"); ok && loc != "" {
		return StockKey(sku, loc)
	}
	return s
}

// locName writes a stock key as a story's "SKU@location".
func locName(key string) string {
	if sku, loc := SplitStockKey(key); loc != "" {
		return sku + "@" + loc
	}
	return key
}

// expiryIndex renders tn's store index: "hold <name> +<deadline>" and
// "key <key> +<deadline>" lines in deadline order, "empty" if none.
func (sc *story) expiryIndex(tn *tnode) string {
	names := map[string]string{}
	for name, id := range sc.holds {
		names[id] = name
	}
	type entry struct {
		at   time.Time
		line string
	}
	var es []entry
	for id, at := range tn.store.index.got.holds {
		name := names[id]
		if name == "" {
			name = id
		}
		es = append(es, entry{at, "hold " + name})
	}
	for k, at := range tn.store.index.got.idem {
		es = append(es, entry{at, "key " + k})
	}
	if len(es) == 0 {
		return "empty"
	}
	sort.Slice(es, func(i, j int) bool {
		if !es[i].at.Equal(es[j].at) {
			return es[i].at.Before(es[j].at)
		}
		return es[i].line < es[j].line
	})
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%s +%v\n", e.line, e.at.Sub(t0))
	}
	return strings.TrimRight(b.String(), "\n")
}

// holdName is the story's name of hold id (the id itself if unnamed).
func (sc *story) holdName(id string) string {
	for name, v := range sc.holds {
		if v == id {
			return name
		}
	}
	return id
}
