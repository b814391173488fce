package escrow

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"
)

// Input is one step of the node: a client command, a peer message, or just
// the passage of time (both nil). Now is the runtime's clock; the node's
// clock never moves backwards.
type Input struct {
	Now time.Time
	Cmd *Command
	Msg *Message
	// Unreachable names a region the runtime just failed to reach in a way
	// that proves it is not there (NATS: no responders). Until the node
	// hears from it again, it neither routes holds to it, nor sends it
	// units of scarce SKUs, nor asks it to lend. May come with Cmd or Msg.
	Unreachable string
	// Resync: the runtime's link to its peers was down and is back, so
	// messages were lost both ways. The node asks every peer for the rows
	// it missed and sends its digest at once, marked urgent, so that peers
	// that missed its rows ask for them without waiting for a second digest.
	Resync bool
}

// Node is one region's escrow state machine. It never blocks, never does
// I/O and never reads the clock: Step feeds it, Ready drains it.
type Node struct {
	cfg Config
	now time.Time
	// clockNs is n.now as nanoseconds since clockBase (syncClock): the
	// times a SKU keeps (skuState.demandAt, rowRec.updated) are int64s on
	// this clock, 16 bytes smaller than a time.Time each.
	clockNs   int64
	clockBase time.Time
	rnd       func() uint64

	seq        uint64 // own change sequence
	bcastSeq   uint64 // own sequence at the last rows broadcast
	skus       map[string]*skuState
	skuTab     skuTable // the same skuStates in insertion order (skutable.go)
	digestNext int
	digests    uint64           // digests built
	hotDemand  []*skuState      // SKUs in demand for the next digest, FIFO (digest_hot.go)
	hotChanged []*skuState      // SKUs changed, for the next digest, FIFO
	hotTaken   []*skuState      // scratch of digestSKUs
	holds      holdMap          // by id (holdmap.go)
	expiry     dlHeap[*holdRec] // deadlines of HELD holds (lazy: checked on pop)
	retire     dlHeap[*holdRec] // terminal holds, at the end of their retention
	idem       map[string]*idemRec
	recounts   map[string]time.Time // as_of of the last recount applied, per SKU
	idemExpiry dlHeap[*idemRec]
	peers      map[string]*peer
	// hints: peers' digest counts above the view's (stock_hints.go).
	hints map[hintKey]uint64

	pending     []*pendingHold // holds waiting on borrowed units, FIFO
	retryDue    bool           // something a pending hold waits for changed
	pendingIdem map[string]*pendingHold
	borrowID    uint64
	borrows     map[uint64]*borrowOut // own requests in flight
	// borrowScanAt is the earliest deadline in borrows (when it is not empty).
	borrowScanAt time.Time
	donations    donationTable // answers to borrow requests, for dedupe (donations.go)
	lastDigest   time.Time
	urgentDigest bool // the next digest asks peers to repair at once (after a resync)
	repairsDue   bool // some peer has askAgain set
	adviceEpoch  uint64
	lowSKUs      map[string]struct{}
	homes        homes
	locs         locationIndex // configured locations by id (locations.go)
	fence        fenceState    // see fence.go
	trust        trustState    // membership and bounds on peer input, see trust.go
	wait         waitlist      // see waitlist.go

	// Accumulated output since the last Ready.
	dirtyRows  []*rowRec
	ownChanged []*rowRec // own rows changed since the last broadcast
	dirtyHolds []*holdRec
	seenDirty  []string // peers whose seen changed since the last Ready
	out        Ready
	readies    int // Ready calls not yet Advanced
	// Events and replies of the last Ready: the capacity the next one's
	// slices grow to when they outgrow their arena slot (growTo).
	lastEvents, lastReplies int
	// readyBufs: the Events and Reply slices of the Readies out, reused
	// once Advanced (readybufs.go).
	readyBufs readyBufs
	// The hold newHold created last and its event's copy of it, for the
	// reply of granted to share.
	created     *holdRec
	createdCopy *Hold
	// holdOut: the block being filled with this Ready's copies of holds
	// as their events state them (holdEvent); earlier blocks are reached
	// through outPtrs (holdout.go); keptOut counts the copies in all of
	// them, lastHolds in the last Ready. Until outBroken, there is one copy
	// of each dirty hold, in dirtyHolds order, as it is now (the usual
	// Ready: holds created, or finished, once each), and outPtrs is
	// Persist.Holds as it is: the event, the reply and the write share one
	// copy of each hold instead of two. marked: the hold markHold saw last,
	// until outCopy.
	holdOut []Hold
	keptOut int
	// prefetched: a sum of what Prefetch read, so that the reads are kept.
	prefetched uint64
	lastHolds  int
	outBroken  bool // sticky until Ready
	marked     *holdRec
	// tmpOut: this Ready's copies that no reply shares (an expiry's
	// event), in a slice the node reuses once the Ready is Advanced
	// (readybufs.go); lastTmp is its length in the last Ready. outPtrs:
	// every copy holdEvent made this Ready, holdOut's and tmpOut's, in
	// order; until outBroken it is Persist.Holds.
	tmpOut  []Hold
	lastTmp int
	outPtrs []*Hold

	stats Stats
	cache skuCache   // bounded SKU residency (skucache.go)
	hc    holdCache  // bounded hold residency (holdcache.go)
	snap  snapSender // snapshots in SKU order (snapshot_sku.go)
	// lastSKU is the state lookup returned last: a hold looks its SKU up
	// three to four times (demand, check, grant, top-up), and a batch of
	// one hot SKU every time. Valid while lastSKU.sku is the name asked
	// for: newSKU sets sku when it puts the state in skus, and evict
	// clears the state (and this) when it takes it out.
	lastSKU *skuState

	// Arenas for Ready output and hold lines (see chunk).
	replyArena chunk[Reply]
	rowArena   chunk[Row]
	holdArena  chunk[Hold]
	eventArena chunk[Event]
	lineArena  chunk[Line]
	msgArena   chunk[Message] // small chunks: see msgChunkLen
	dlArena    chunk[Deadline]
	idArena    chunk[string]

	// Expiry index entries ended and holds retired since the last Ready
	// (expiry_index.go): reused, copied into the arenas by Ready.
	unindexHolds, unindexIdem []Deadline
	retired                   []string
	idemGone                  int              // tombstones in out.Persist.Idem
	idemPos                   map[string]int32 // see endIdem
	idemPosBuilt              bool
}

// Stats are cumulative counters of one node, for metrics and simulator reports.
type Stats struct {
	Granted, Rejected, Replayed                  uint64
	Confirmed, ReleasedHolds, ExpiredHolds       uint64
	BorrowsSent, BorrowsAnswered, BorrowTimeouts uint64
	// BorrowsSkippedFar: peers with surplus not asked for a waiting hold
	// because their RTT exceeds the time left before its deadline.
	BorrowsSkippedFar uint64
	// BorrowDeadlinesStretched counts holds whose borrow deadline was
	// stretched past BorrowTimeout to the nearest donor's RTT.
	BorrowDeadlinesStretched uint64
	// StockHintsUsed: hinted peers added to (or raised in) a borrow's
	// candidates while a peer's rows may lag for good (stock_hints.go);
	// StockHintsDropped: hints not kept because the map was full.
	StockHintsUsed, StockHintsDropped uint64
	BorrowUnitsIn, DonatedUnits       uint64
	// BorrowUnitsOut: the part of DonatedUnits given in answer to borrow
	// requests (the rest went by advice or to homes).
	BorrowUnitsOut                       uint64
	TopUps, AdviceApplied, AdviceIgnored uint64
	// AdviceSkippedOutOfTouch: advised moves not made because the
	// receiver was not heard from lately (in_touch.go).
	AdviceSkippedOutOfTouch    uint64
	RepairsSent, RepairsServed uint64
	MsgsRejected, Gaps         uint64
	ActiveHolds, PendingHolds  uint64
	// Routed: holds sent on to a SKU's home; HomeUnitsSent: units sent to
	// homes of scarce SKUs.
	Routed, HomeUnitsSent uint64
	// RoutedRetryRefused: retries of routed holds refused with
	// CodeHomeUnreachable (routed_retry.go).
	RoutedRetryRefused uint64
	// Fenced is 1 while the node refuses writes (fenced or on probation,
	// see fence.go); FenceRefused counts the commands it refused.
	Fenced, FenceRefused uint64
	// Peer input refused (trust.go), by reason: from, about or moving units
	// to a region outside the membership; a row or message out of bounds
	// (a field or a per-SKU sum over the plausible maximum); a sequence
	// beyond the plausible window; a new SKU over MaxPeerSKUs.
	NonMember, OutOfBounds, SeqWindow, PeerSKUsRefused uint64
	// PeerSKUs: SKUs first learned from a peer (gauge, at most MaxPeerSKUs).
	PeerSKUs uint64
	// FenceClaims: peers that currently say they have seen more of this
	// region's rows than its store holds, without (yet) the number of
	// voices that fences it (gauge; see fence.go).
	FenceClaims uint64
	// Waitlist (waitlist.go): entries joined, promoted to holds, cancelled
	// and expired; WaitAsks: borrow requests made for waiters; Waiting:
	// entries waiting now.
	WaitJoined, WaitPromoted, WaitCancelled, WaitExpired, WaitAsks, Waiting uint64
	// WaitingUnits: units all waiting entries here ask for, over SKUs.
	WaitingUnits uint64
	// Partial: partial holds granted less than they asked for.
	Partial uint64
	// Recounts: recounts applied.
	Recounts uint64
	// Digests built; DigestSKUs: SKU entries they carried, of which
	// DigestHotSKUs were hot (changed or in demand, digest_hot.go);
	// DigestBytes: the encoded size of those entries.
	Digests, DigestSKUs, DigestHotSKUs, DigestBytes uint64
	// RepairRowsServed: own rows sent in repair answers; RepairChunks:
	// answers cut at MaxRepairRows (the peer asks again for the rest).
	RepairRowsServed, RepairChunks uint64
	// LocationRefused: requests, peer asks and advice refused because they
	// name an unknown location or move units to a region that may not sell
	// from it; LocationSplitLines: cart lines split over locations.
	LocationRefused, LocationSplitLines uint64
	// Stale borrow requests (borrow_stale.go): refused as a donor; refusals
	// received as a requester, and requests asked again after one.
	BorrowStaleRefused, BorrowStaleAnswers, BorrowStaleReasked uint64
	// Donations: answers to borrow requests remembered for dedupe (gauge,
	// at most MaxDonations; donations.go); DonationCopiesRefused: borrow
	// requests answered with nothing as possible copies of forgotten ones.
	Donations, DonationCopiesRefused uint64
	// The bounded SKU cache (skucache.go; zero when off): lookups served
	// from memory, SKUs read from the row source, SKUs dropped, and the
	// SKUs resident now (gauge).
	SKUCacheHits, SKUCacheMisses, SKUCacheEvictions, SKUResident uint64
	// Snapshots in SKU order (snapshot_sku.go). Sent: own rows and their
	// encoded bytes in answers. Received: rows and bytes of parts taken
	// in order, answers (chunks) complete, snapshots started and done,
	// parts out of order or of an old request (their rows merged, the
	// cursor not moved), and snapshots in progress now (gauge).
	SnapshotRowsSent, SnapshotBytesSent                                           uint64
	SnapshotRowsReceived, SnapshotBytesReceived, SnapshotChunksReceived           uint64
	SnapshotsStarted, SnapshotsDone, SnapshotPartsOutOfOrder, SnapshotsInProgress uint64
	// The bounded hold cache (holdcache.go; zero when off): holds and
	// idempotency keys found in memory, read from the hold source,
	// dropped, and the holds and keys resident now (gauges).
	HoldCacheHits, HoldCacheMisses, HoldCacheEvictions uint64
	HoldsResident, KeysResident                        uint64
}

// skuState is laid out for a hold at a large catalogue, where it is cold:
// the fields a hold reads or writes (its own row, the row list, the demand
// EWMA, the digest bit) come first, the ones only borrows, the waitlist,
// rejections and digests use come last, and the struct is exactly
// skuStateSize (256) bytes, so that in a skuTable slab (a large
// allocation, page aligned) each state fills four whole cache lines, two
// adjacent-line pairs, instead of straddling five or six (it was 280
// bytes). TestSKUStateLayout holds both.
type skuState struct {
	own  *rowRec
	list []*rowRec // rows by writer region, at most one each (see rec)
	// first and inl hold the first row and list's first slot inside the
	// struct: most SKUs only ever have their own row.
	first  rowRec
	inl    [1]*rowRec
	sku    string
	demand float64 // units/s, EWMA
	// demandAt: when demand was last noted, on the node's clock (clockNs);
	// 0: never.
	demandAt int64
	// hot: the digest queues s is in (digest_hot.go).
	hot uint8
	// slot: s's index in skuTab (in hot's padding: no extra bytes), which
	// indexes the bounded cache's LRU links (skucache.go).
	slot int32

	// Cold: not read by a hold granted at once.
	reject uint64
	topUp  uint64 // borrow id of the top-up in flight, 0 if none
	// gen counts changes that may have raised available here; waiting counts
	// pending holds with a line of this SKU (see retryPending).
	gen     uint64
	waiting int
	// digested: the last digest that carried s (digest_hot.go).
	digested uint64
	_        [skuStatePad]byte
}

// skuStateSize is skuState's size: four cache lines.
const skuStateSize = 256

// skuStatePad fills skuState up to skuStateSize on 64-bit platforms.
const skuStatePad = 8

type rowRec struct {
	Row
	dirty bool
	bcast bool
	// updated: when the row last changed here, on the node's clock
	// (clockNs); 0: not since the node started (or the SKU was loaded).
	updated int64
	sku     *skuState // the SKU the row belongs to
}

type peer struct {
	seen uint64 // last contiguous sequence received (see Message)
	// maxRow: the highest sequence of its rows merged, contiguous or not
	// (the store fence's evidence: fence.go, seenList).
	maxRow uint64
	// behind: its last digest named a sequence below rows of it we hold:
	// a late copy, or its store went back (fence_restart.go).
	behind    bool
	chainFrom uint64 // multi-part rows message in progress
	chainTo   uint64
	repairAt  time.Time // when the outstanding repair was asked, zero if none
	askAgain  bool      // a gap came while that repair was outstanding (retryRepairs)
	suspect   bool      // a digest showed a sequence beyond seen
	seenDirty bool
	// heard is when the peer last said anything (see worthAsking).
	heard time.Time
	// gone is when the runtime last reported it unreachable; it counts
	// until the peer is heard from after that.
	gone time.Time
	// fenced: its last digest said it refuses writes (see fence.go).
	fenced bool
	// srtt: smoothed round-trip time of borrows to it, 0 if none (rtt.go).
	srtt time.Duration
	// artt: the same smoothed from answers only, never raised by a timeout
	// (the stretched borrow deadline follows it; rtt_borrow.go).
	artt time.Duration
	// timedOut: when a borrow to it last timed out (stretchRTT).
	timedOut time.Time
	// clockHW: the highest clock stamp (Unix ms) of its digests and borrow
	// requests, bounded (borrow_stale.go). Not persisted.
	clockHW uint64
	// snap: the snapshot in SKU order coming from it; bcast: the latest
	// contiguous run of its broadcasts received (snapshot_sku.go).
	snap  snapRecv
	bcast seqRun
	// bySKU: its last digest said it answers repairs in SKU order.
	bySKU bool
}

type pendingHold struct {
	cmd      Command
	lines    []Line
	deadline time.Time
	asks     int      // borrow answers still awaited
	waiters  []uint64 // extra ReqIDs retrying the same idempotency key
	done     bool
	skus     []*skuState // of lines
	gen      uint64      // sum of the skus' gen at the last attempt
}

func (p *pendingHold) genSum() uint64 {
	var g uint64
	for _, s := range p.skus {
		g += s.gen
	}
	return g
}

type borrowOut struct {
	sku      string
	to       string
	deadline time.Time
	sent     time.Time // when the request was sent (RTT sample, rtt.go)
	topUp    bool
	pend     *pendingHold // the hold waiting on this borrow, nil for top-ups
	qty      uint64       // units asked (a refused stale request is asked again: borrow_stale.go)
}

// NewNode returns a node for cfg, restored from st (nil for a new region).
func NewNode(cfg Config, st *State) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	n := &Node{
		cfg:         c,
		skus:        make(map[string]*skuState),
		holds:       newHoldMap(0),
		idem:        make(map[string]*idemRec),
		recounts:    make(map[string]time.Time),
		peers:       make(map[string]*peer),
		pendingIdem: make(map[string]*pendingHold),
		borrows:     make(map[uint64]*borrowOut),
		donations:   newDonationTable(c.MaxDonations),
		lowSKUs:     make(map[string]struct{}),
		homes:       newHomes(c.MaxRouted),
		wait:        newWaitlist(),
		rnd:         c.Rand,
		locs:        newLocationIndex(c.Locations),
	}
	n.holds.dropCollision = c.bugs.HoldMapDropsCollision
	if n.rnd == nil {
		var seed uint64
		for i := 0; i < len(c.Region); i++ {
			seed = seed*131 + uint64(c.Region[i])
		}
		r := rand.New(rand.NewPCG(seed, 0x686f6c6466617374))
		n.rnd = r.Uint64
	}
	n.initTrust()
	n.initCache()
	n.initHoldCache()
	if st != nil {
		if err := n.restoreFrom(st); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// restoreFrom is restore, with a row source failure during it (the
// waitlist's SKUs are read) returned as an error.
func (n *Node) restoreFrom(st *State) (err error) {
	if n.sourceOn() {
		defer n.recoverSource(&err)
	}
	if err := n.restore(st); err != nil {
		return err
	}
	n.evict()
	return nil
}

func (n *Node) restore(st *State) error {
	n.seq = st.Seq
	n.bcastSeq = st.Seq
	n.snap.durable = st.Seq // every restored row is stored
	if n.cache.on && len(st.Rows) > 0 {
		return errorf(CodeInvalid, "with a row source (Config.Rows) the restored state must carry no rows: the node reads them from the source")
	}
	if n.hc.on {
		if len(st.Holds) > 0 || len(st.Idem) > 0 {
			return errorf(CodeInvalid, "with a hold source (Config.Holds) the restored state must carry no holds nor idempotency keys: the node reads them from the source")
		}
		n.stats.ActiveHolds = st.HeldHolds
		n.restoreHoldCache(st)
	}
	// Sized once: a large catalogue's map would otherwise be rehashed a
	// dozen times on the way up.
	n.skus = make(map[string]*skuState, skuRuns(st.Rows))
	n.lastSKU = nil
	n.holds = newHoldMap(len(st.Holds))
	n.holds.dropCollision = n.cfg.bugs.HoldMapDropsCollision
	var s *skuState // the previous row's SKU: a store gives rows in SKU order
	for i := range st.Rows {
		r := st.Rows[i].Clone()
		if err := ValidStockKey(r.SKU); err != nil {
			return err
		}
		if err := ValidRegion(r.Region); err != nil {
			return err
		}
		if r.Region == n.cfg.Region && r.Seq > st.Seq {
			return errorf(CodeInvariant, "own row %s has seq %d beyond the stored sequence %d", r.SKU, r.Seq, st.Seq)
		}
		if s == nil || s.sku != r.SKU {
			s = n.sku(r.SKU)
		}
		rec := s.rec(r.Region)
		rec.Row = r
		if r.Region != n.cfg.Region {
			p := n.peer(r.Region)
			p.maxRow = max(p.maxRow, r.Seq)
		} else {
			// Without this a restored region would skip its own rows in
			// repairs, borrow answers, advice and digests until it next
			// changed them.
			s.own = rec
		}
	}
	for r, seq := range st.PeerSeq {
		if err := ValidRegion(r); err != nil {
			return err
		}
		n.peer(r).seen = seq
	}
	for i := range st.Holds {
		h := st.Holds[i].Clone()
		owner, err := OwnerOf(h.ID)
		if err != nil {
			return err
		}
		if owner != n.cfg.Region {
			return errorf(CodeInvariant, "stored hold %s belongs to region %s", h.ID, owner)
		}
		internLines(n, h.Lines)
		rec := newHoldRec(&h)
		n.holds.put(rec)
		// The node's clock never runs backwards, across a restart too: a
		// runtime whose clock jumped back while the region was down must
		// not date a hold's change before the hold's last one.
		for _, t := range [...]time.Time{h.Created, h.Updated} {
			if t.After(n.now) {
				n.now = t
			}
		}
		if h.State == Held {
			n.stats.ActiveHolds++
			n.expiry.push(rec.expires, rec)
		} else {
			n.retire.push(nanos(h.Updated.Add(n.cfg.HoldRetain)), rec)
		}
	}
	var routed []*IdemEntry
	for _, m := range st.Recounts {
		if err := ValidStockKey(m.SKU); err != nil {
			return err
		}
		if m.AsOf.After(n.recounts[m.SKU]) {
			n.recounts[m.SKU] = m.AsOf
		}
	}
	for i := range st.Idem {
		e := st.Idem[i]
		if (e.HoldID == "") == (e.RoutedTo == "") {
			return errorf(CodeInvariant, "stored idempotency key %q names both or neither of a hold and a routed region", e.Key)
		}
		r := newIdemRec(&e)
		if h := n.holds.get(e.HoldID); h != nil {
			r.HoldID = h.ID() // shared with the hold, as when it was granted
		}
		n.idem[e.Key] = r
		n.idemExpiry.push(r.expires, r)
		if e.RoutedTo != "" {
			routed = append(routed, &e)
		}
	}
	// Routed keys were remembered in the order of their expiry: rebuild the
	// FIFO that bounds them in that order.
	sort.Slice(routed, func(i, j int) bool {
		if !routed[i].Expires.Equal(routed[j].Expires) {
			return routed[i].Expires.Before(routed[j].Expires)
		}
		return routed[i].Key < routed[j].Key
	})
	for _, e := range routed {
		n.homes.routedLog = append(n.homes.routedLog, e.Key)
	}
	n.countLearned()
	if err := n.restoreWaits(st.Waits); err != nil {
		return err
	}
	for i := range n.skuTab.len() { // the slabs in order: no map walk
		s := n.skuTab.at(i)
		if s.sku == "" {
			continue // a free slot (skucache.go)
		}
		if a := s.availableOf(n.cfg.Region); a < 0 {
			return errorf(CodeInvariant, "stored state has available(%s, %s) = %d", n.cfg.Region, s.sku, a)
		}
	}
	return nil
}

// skuRuns returns the number of runs of one SKU in rows: the number of
// SKUs when rows are sorted by SKU (as a store loads them), more otherwise.
func skuRuns(rows []Row) int {
	runs := 0
	for i := range rows {
		if i == 0 || rows[i].SKU != rows[i-1].SKU {
			runs++
		}
	}
	return runs
}

// Region returns the node's region name.
func (n *Node) Region() string { return n.cfg.Region }

// Now returns the node's clock.
func (n *Node) Now() time.Time { return n.now }

// Seq returns the node's own change sequence.
func (n *Node) Seq() uint64 { return n.seq }

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	s := n.stats
	s.PendingHolds = uint64(len(n.pending))
	if !n.fence.st.Fenced || n.fence.st.Probation {
		s.FenceClaims = uint64(len(n.claimVoices()))
	}
	s.Waiting = uint64(n.wait.waiting)
	s.WaitingUnits = n.waitingUnits()
	s.Donations, s.DonationCopiesRefused = uint64(n.donations.len()), n.donations.refused
	if n.cache.on {
		c := &n.cache
		s.SKUCacheHits, s.SKUCacheMisses, s.SKUCacheEvictions, s.SKUResident = c.hits, c.miss, c.evictions, uint64(c.resident)
	}
	s.SnapshotsInProgress = n.snapshotsInProgress()
	if n.hc.on {
		c := &n.hc
		s.HoldCacheHits, s.HoldCacheMisses, s.HoldCacheEvictions = c.hits, c.misses, c.evictions
		s.HoldsResident, s.KeysResident = uint64(n.holds.len()), uint64(len(n.idem))
	}
	return s
}

// clockMargin puts clockBase this far (about 36 years) before the first
// Step's clock, so that clockNs is positive (0 means "never") for any
// later n.now, and within the int64 range for two centuries more.
// A clock before the first Step (restore's) has clockNs 0.
const clockMargin = time.Duration(1 << 60)

// syncClock sets clockNs from n.now. Offsets from one base are taken with
// Time.Sub, so the difference of two of them is t.Sub(u) for the two
// times, exactly: with a runtime's clock (time.Now, with its monotonic
// reading) on the monotonic clock, unmoved by wall-clock steps, as
// time.Times compared there; with a simulator's clock (no monotonic
// reading) on the wall clock, nanosecond for nanosecond, so the EWMA's
// arithmetic, and the simulator's output, are what they were with
// time.Times. (Unix nanoseconds would have put a wall-clock step into
// every decay.) The base is taken from the first Step's clock minus
// clockMargin, which Time.Add does with the monotonic reading kept for
// any clock after 1921. It is the input's, not n.now, which a restore
// may have moved to a stored hold's time, without monotonic reading.
func (n *Node) syncClock() {
	if !n.clockBase.IsZero() {
		n.clockNs = int64(n.now.Sub(n.clockBase))
	}
}

// Step feeds one input to the node. It returns an error only for a peer
// message that was rejected (and not applied); commands always get a Reply.
func (n *Node) Step(in Input) (err error) {
	if n.sourceOn() {
		if n.cache.failed != nil {
			return n.cache.failed
		}
		defer n.recoverSource(&err)
	}
	if in.Now.After(n.now) || n.cfg.bugs.TrustClock {
		n.now = in.Now
	}
	if n.clockBase.IsZero() {
		n.clockBase = in.Now.Add(-clockMargin)
	}
	n.syncClock()
	if in.Unreachable != "" && in.Unreachable != n.cfg.Region && ValidRegion(in.Unreachable) == nil {
		if p := n.peers[in.Unreachable]; p != nil {
			p.gone = n.now
		}
	}
	if in.Resync {
		n.resync()
	}
	switch {
	case in.Cmd != nil:
		n.command(in.Cmd)
	case in.Msg != nil:
		err = n.message(in.Msg)
		if err != nil {
			n.stats.MsgsRejected++
		}
	}
	n.tick()
	if n.sourceOn() {
		n.evict()
		n.evictHolds()
		if n.cache.failed != nil {
			return n.cache.failed
		}
	}
	return err
}

// HasReady reports whether Ready would return anything.
func (n *Node) HasReady() bool {
	if n.cache.failed != nil {
		return false
	}
	return len(n.dirtyRows) > 0 || len(n.dirtyHolds) > 0 || len(n.wait.dirty) > 0 || len(n.ownChanged) > 0 || len(n.seenDirty) > 0 ||
		len(n.unindexHolds) > 0 || len(n.unindexIdem) > 0 || len(n.retired) > 0 || !n.out.Empty()
}

// Ready returns everything the node produced since the last Ready. The
// runtime must persist rd.Persist durably (one atomic, synced write), then
// send rd.Send, then deliver rd.Reply, then call Advance. Readies must be
// persisted in the order they were returned.
func (n *Node) Ready() Ready {
	if n.cache.failed != nil {
		// A step failed half-way: nothing of it may be persisted or sent.
		return Ready{}
	}
	n.cache.readyNo++
	rd := n.out
	n.clearOut() // n.out = Ready{}, without the bulk write barrier
	// One backing array for the persisted rows and the broadcast rows;
	// when they are the same rows (a Ready of holds and finishes: the own
	// rows they changed), the broadcast shares the persisted copies (both
	// are read only), one Row clone per changed row fewer.
	shareRows := n.sameRowsOut()
	var rowBuf []Row
	if k := len(n.dirtyRows) + len(n.ownChanged); k > 0 {
		if shareRows {
			k = len(n.dirtyRows)
		}
		rowBuf = n.rowArena.take(k)
	}
	if len(n.dirtyRows) > 0 {
		for _, r := range n.dirtyRows {
			// Into its slot field by field (cloneInto), not appended as a
			// value: no bulk write barrier. rowBuf is local (take sized
			// it): extending it writes no heap pointer.
			r.Row.cloneInto(extend(&rowBuf, len(n.dirtyRows)))
			r.dirty = false
			if n.cache.on {
				n.cache.links[r.sku.slot].readyNo = n.cache.readyNo
			}
		}
		rd.Persist.Rows = rowBuf[:len(rowBuf):len(rowBuf)]
		rowBuf = rowBuf[len(rowBuf):]
		n.dirtyRows = n.dirtyRows[:0]
	}
	if len(n.dirtyHolds) > 0 {
		rd.Persist.Holds = n.persistHolds()
	}
	n.lastHolds, n.lastTmp = n.keptOut, len(n.tmpOut)
	n.keptOut = 0
	tmpOut := n.tmpOut
	// Written only when set (clearSlice, setRef): no write barrier for a
	// field already nil.
	clearSlice(&n.holdOut)
	clearSlice(&n.tmpOut)
	setRef(&n.marked, nil)
	n.outBroken = false
	if n.outPtrs != nil { // not Persist.Holds (persistHolds took it if it is)
		n.readyBufs.recycleHoldPtrs(n.outPtrs)
		n.outPtrs = nil
	}
	n.drainExpiry(&rd)
	n.drainWaits(&rd)
	if len(n.seenDirty) > 0 {
		rd.Persist.PeerSeq = make(map[string]uint64, len(n.seenDirty))
		for _, r := range n.seenDirty {
			p := n.peers[r]
			rd.Persist.PeerSeq[r] = p.seen
			p.seenDirty = false
		}
		n.seenDirty = n.seenDirty[:0]
	}
	rd.Persist.Seq = n.seq
	if len(n.ownChanged) > 0 {
		rows := rowBuf
		if shareRows {
			rows = rd.Persist.Rows
		}
		for _, r := range n.ownChanged {
			if !shareRows {
				rows = append(rows, r.Row.Clone())
			}
			r.bcast = false
			if n.cache.on {
				n.cache.links[r.sku.slot].readyNo = n.cache.readyNo
			}
		}
		n.ownChanged = n.ownChanged[:0]
		n.broadcastRows(&rd, rows)
		n.bcastSeq = n.seq
	}
	n.lastEvents, n.lastReplies = len(rd.Persist.Events), len(rd.Reply)
	n.snapReady()
	n.readies++
	n.readyBufs.noteReady(&rd, tmpOut)
	if n.hc.on {
		n.noteReady(&rd)
	}
	return rd
}

// sameRowsOut reports whether this Ready broadcasts exactly the rows it
// persists, in the same order, few enough for one message (rowsMessages
// sorts a longer list in place, which must not reorder Persist.Rows).
func (n *Node) sameRowsOut() bool {
	if n.cfg.bugs.ShareRowsAnyway && len(n.dirtyRows) > 0 && len(n.ownChanged) > 0 {
		return true
	}
	if len(n.ownChanged) == 0 || len(n.ownChanged) != len(n.dirtyRows) || len(n.ownChanged) > n.cfg.MaxRowsPerMsg {
		return false
	}
	for i, r := range n.ownChanged {
		if n.dirtyRows[i] != r {
			return false
		}
	}
	return true
}

// Advance tells the node that the oldest Ready not yet advanced has been
// persisted, sent and replied.
func (n *Node) Advance() {
	if n.readies <= 0 {
		panic("escrow: Advance without Ready")
	}
	n.readies--
	n.readyBufs.advance()
	n.cache.advanced++
	n.snapAdvanced()
	if n.cache.on {
		n.evict()
	}
	if n.hc.on {
		n.advanceHolds()
	}
}

// rowsMessages splits rows (one atomic snapshot, changes in (prev, seq])
// into messages of at most MaxRowsPerMsg rows, ordered by row Seq. Every
// part but the last has More set; see Message for the receiver's rule.
func (n *Node) rowsMessages(to string, prev, seq uint64, rows []Row) []Message {
	if len(rows) <= n.cfg.MaxRowsPerMsg {
		if n.msgArena.size == 0 {
			n.msgArena.size = msgChunkLen
		}
		return append(n.msgArena.take(1), Message{Type: MsgRows, From: n.cfg.Region, To: to, PrevSeq: prev, Seq: seq, Rows: rows})
	}
	// Sorted without reflection: a repair of a large catalogue sorts
	// every own row (TestSweepLargeCatalogue).
	seqOrder := func(a, b Row) int { return cmp.Compare(a.Seq, b.Seq) }
	if !slices.IsSortedFunc(rows, seqOrder) {
		slices.SortFunc(rows, seqOrder)
	}
	var msgs []Message
	from := prev
	for len(rows) > 0 {
		k := min(len(rows), n.cfg.MaxRowsPerMsg)
		part := rows[:k]
		rows = rows[k:]
		m := Message{Type: MsgRows, From: n.cfg.Region, To: to, PrevSeq: from, Rows: part}
		if len(rows) > 0 {
			m.Seq = part[len(part)-1].Seq
			m.More = true
		} else {
			m.Seq = seq
		}
		from = m.Seq
		msgs = append(msgs, m)
	}
	return msgs
}

// ownLines normalizes the lines of a command into the line arena: a hold
// keeps them for its lifetime, so they are copied once, never per Ready.
func (n *Node) ownLines(lines []Line) ([]Line, *Error) {
	var dst []Line
	if k := len(lines); k > 0 && k <= MaxLines {
		dst = n.lineArena.take(k)
	}
	return normalizeLinesInto(dst, lines, n.residentOne(lines))
}

// residentOne reports whether lines is one line of a resident SKU, whose
// name is then a valid stock key: newSKU, which every state comes from,
// asserts it. The state found is left as lookup's memo, so that the
// hold's lookups of the line that follow take it without probing the map
// again: the map is probed once per one-line hold, as before, and the
// line's name is not validated twice (ValidStockKey: ~17 ns). Longer
// carts are validated line by line: the memo keeps one SKU, and a second
// probe per line would cost what it saves.
func (n *Node) residentOne(lines []Line) bool {
	if len(lines) != 1 || n.cfg.bugs.LookupMemoAnyName {
		return false // the planted bug's memo answers any name: it is not set here
	}
	s := n.skus[lines[0].SKU]
	if s == nil {
		return false
	}
	setRef(&n.lastSKU, s)
	return true
}

// holdCopy returns a copy of h from the hold arena, for a reply.
func (n *Node) holdCopy(h *holdRec) *Hold {
	s := append(n.holdArena.take(1), h.hold())
	return &s[0]
}

func (n *Node) reply(r Reply) {
	if n.out.Reply == nil {
		n.out.Reply = n.takeReplies()
	}
	// Written into its slot field by field (Reply.set), not appended as
	// a value: no bulk write barrier.
	extend(&n.out.Reply, n.lastReplies).set(&r)
}

// maxGrowHint bounds the capacity a Ready's Events or Reply slice jumps to
// on its second element (growTo): 1,024 replies or events, ~0.5 MB of
// events, after one large Ready (a bulk load) however large it was.
const maxGrowHint = 1024

// growTo returns s, or a copy of s with room for about as many elements
// as the previous Ready had (hint, at most maxGrowHint) when s is full.
// A runtime's Readies carry one batch of callers each, of similar size
// from one Ready to the next: growing once to that size instead of by
// doubling from one element saves the copies (a 256-hold Ready's events,
// 504 bytes each, were copied twice over on average) and all but one
// allocation of the slice.
//
// A slice field that gets one more element is better extended (extend)
// than assigned growTo(s, hint)[:k]: that assignment writes the slice
// header, with a write barrier while the collector runs, on every call.
func growTo[T any](s []T, hint int) []T {
	if len(s) < cap(s) {
		return s
	}
	c := max(2*cap(s), min(hint, maxGrowHint))
	ns := make([]T, len(s), c)
	copy(ns, s)
	return ns
}

// extend makes *s one element longer (growTo when full) and returns that
// element. Reslicing *s in place writes only its length: the pointer, and
// its write barrier while the collector runs, are written only when the
// slice grows (one or two of those per Ready's Events, Reply and hold
// copies, where assigning growTo(*s, hint)[:k] wrote it per element).
func extend[T any](s *[]T, hint int) *T {
	if len(*s) == cap(*s) {
		*s = growTo(*s, hint)
	}
	*s = (*s)[:len(*s)+1]
	return &(*s)[len(*s)-1]
}

// chunk hands out small slices carved from one larger allocation, so that
// the output of most Readies costs no allocation of its own. Every slice
// has its capacity capped (a full slice expression), so a runtime that
// appends to one gets a copy and never writes into its neighbour. The
// price: a slice kept by a runtime keeps its whole chunk (chunkLen
// elements) alive, so chunks stay small, and messages, which simulators
// keep in flight for long, get chunks of msgChunkLen only.
type chunk[T any] struct {
	buf  []T
	size int // elements per chunk; 0: chunkLen
}

const (
	chunkLen    = 64
	msgChunkLen = 8
)

func (c *chunk[T]) take(n int) []T {
	size := c.size
	if size == 0 {
		size = chunkLen
	}
	if n > size/4 {
		return make([]T, 0, n)
	}
	if len(c.buf)+n > cap(c.buf) {
		c.buf = make([]T, 0, size)
	}
	s := c.buf[len(c.buf) : len(c.buf) : len(c.buf)+n]
	c.buf = c.buf[:len(c.buf)+n]
	return s
}

func (n *Node) send(m Message) { n.out.Send = append(n.out.Send, m) }

func (n *Node) sku(name string) *skuState {
	s := n.lookup(name)
	if s == nil {
		s = n.newSKU(name)
	}
	return s
}

// rec returns the row of region in s, creating it empty. A linear scan:
// a SKU has one row per region that ever wrote it, a handful at most
// (bounded by the membership, see trust.go).
func (s *skuState) rec(region string) *rowRec {
	for _, r := range s.list {
		if r.Region == region {
			return r
		}
	}
	var r *rowRec
	if s.list == nil {
		r = &s.first
		s.list = s.inl[:0]
	} else {
		r = &rowRec{}
	}
	r.Row = Row{SKU: s.sku, Region: region}
	r.sku = s
	s.list = append(s.list, r)
	return r
}

// availableOf is View.Available(r) over the rows of s, iterating a slice
// instead of the map: it runs several times per hold.
func (s *skuState) availableOf(r string) int64 {
	var recv int64
	var row *Row
	for _, rec := range s.list {
		if rec.Region == r {
			row = &rec.Row
			continue
		}
		for i := range rec.Sent {
			if rec.Sent[i].To == r {
				recv += int64(rec.Sent[i].Qty)
				break
			}
		}
	}
	if row == nil {
		return recv
	}
	return int64(row.Minted) + recv - int64(row.SentTotal()) - int64(row.Reserved) +
		int64(row.Released) - int64(row.Shrunk)
}

// ownRow returns this region's row of s, creating it empty.
func (n *Node) ownRow(s *skuState) *rowRec {
	if s.own == nil {
		s.own = s.rec(n.cfg.Region)
	}
	return s.own
}

// available returns available(self) for s, never negative.
func (n *Node) available(s *skuState) uint64 {
	a := s.availableOf(n.cfg.Region)
	if a < 0 {
		if n.cfg.bugs.GrantWithoutCheck || n.cfg.bugs.MergeBySum || n.cfg.bugs.KeepExpiredUnits {
			return 0
		}
		panic("escrow: available(" + n.cfg.Region + ", " + s.sku + ") < 0")
	}
	return uint64(a)
}

// touchOwn records a change of the own row: one sequence number per change.
func (n *Node) touchOwn(r *rowRec) {
	n.seq++
	r.Seq = n.seq
	r.updated = n.clockNs
	n.markRow(r)
	n.markChanged(r.sku)
	if !r.bcast {
		r.bcast = true
		n.ownChanged = append(n.ownChanged, r)
	}
}

func (n *Node) markRow(r *rowRec) {
	if !r.dirty {
		r.dirty = true
		n.dirtyRows = append(n.dirtyRows, r)
	}
}

func (n *Node) markHold(h *holdRec) {
	n.marked = h // changed: holdEvent copies it next (outCopy)
	if !h.dirty {
		h.dirty = true
		n.dirtyHolds = append(n.dirtyHolds, h)
	}
}

func (n *Node) peer(r string) *peer {
	p := n.peers[r]
	if p == nil {
		p = &peer{}
		n.peers[r] = p
	}
	return p
}

func (n *Node) noteDemand(s *skuState, qty uint64) {
	tau := n.cfg.DemandTau.Seconds()
	if s.demandAt != 0 {
		// The same Duration as n.now.Sub(the instant noted), bit for bit
		// (clockNs): the same decay.
		dt := time.Duration(n.clockNs - s.demandAt).Seconds()
		if dt > 0 {
			s.demand *= math.Exp(-dt / tau)
		}
	}
	s.demandAt = n.clockNs
	s.demand += float64(qty) / tau
	n.markDemand(s)
}

// demandNow returns the decayed demand rate of s in units/s.
func (n *Node) demandNow(s *skuState) float64 {
	if s.demandAt == 0 {
		return 0
	}
	d := time.Duration(n.clockNs - s.demandAt)
	if d == 0 {
		// Noted at this instant (noteDemand ran for the same command, or
		// an earlier one of the same batch, which shares its clock):
		// exp(-0) is exactly 1, so the rate is s.demand bit for bit, and
		// two math.Exp per held line are saved.
		return s.demand
	}
	return s.demand * math.Exp(-d.Seconds()/n.cfg.DemandTau.Seconds())
}
