package escrow

import "time"

// Limits on every input. They bound memory, message sizes and arithmetic
// (no counter can overflow when each step adds at most MaxQty*MaxLines).
const (
	MaxQty          = 1_000_000 // units per cart line, restock or write-off
	MaxLines        = 100       // lines per cart
	MaxSKULen       = 128       // bytes, printable UTF-8
	MaxRegionLen    = 32        // bytes, [a-z0-9_]
	MaxIdemKeyLen   = 128       // bytes, printable ASCII
	MaxMetaLen      = 1024      // bytes of client metadata per hold
	MaxCartLen      = 128       // bytes of a hold's cart reference, printable ASCII
	MaxHoldIDLen    = MaxRegionLen + 1 + 26
	DefaultTTL      = 10 * time.Minute
	DefaultMaxLife  = time.Hour
	MinTTL          = time.Second
	DefaultIdemTTL  = 24 * time.Hour
	DefaultBorrowTO = 50 * time.Millisecond
	// DefaultTopUpHorizon: by default a region keeps this much of its own
	// recent demand in its slice, topping up in the background below it.
	DefaultTopUpHorizon = 10 * time.Second
)

// Line is one cart line: qty units of one SKU.
type Line struct {
	SKU string
	Qty uint64
}

// HoldState is the lifecycle state of a hold.
type HoldState uint8

const (
	Held HoldState = iota + 1
	Confirmed
	Released
	Expired
)

var stateNames = [...]string{Held: "held", Confirmed: "confirmed", Released: "released", Expired: "expired"}

func (s HoldState) String() string { return enumName(stateNames[:], s) }

// Terminal reports whether no further transition can leave s.
func (s HoldState) Terminal() bool { return s != Held }

// Hold is a set of units reserved for one shopper until Expires. It lives in
// the region that granted it (the prefix of its ID).
type Hold struct {
	ID         string
	Lines      []Line // sorted by SKU, no duplicates
	State      HoldState
	Created    time.Time
	Expires    time.Time // deadline: at or after it the hold is expired
	MaxExpires time.Time // extend never moves Expires past this
	Updated    time.Time // time of the last state change
	IdemKey    string
	Meta       string
	// Cart is the client's opaque cart reference (at most MaxCartLen
	// bytes of printable ASCII), indexed by the runtime for listing.
	Cart string
	// Asked is the cart as requested, for a partial hold only (nil for an
	// all-or-nothing one): sorted by SKU like Lines, one entry per SKU
	// asked for, including those granted nothing. Lines holds what was
	// granted (only lines with Qty > 0), so every rule about reserved units
	// reads Lines alone.
	Asked []Line
}

// Partial reports whether h was created by a partial hold request.
func (h *Hold) Partial() bool { return h.Asked != nil }

// GrantedOf returns the units of sku granted in h (0 when none).
func (h *Hold) GrantedOf(sku string) uint64 {
	for _, l := range h.Lines {
		if l.SKU == sku {
			return l.Qty
		}
	}
	return 0
}

// Clone returns a deep copy of h.
func (h *Hold) Clone() Hold {
	c := *h
	c.Lines = append([]Line(nil), h.Lines...)
	if h.Asked != nil {
		c.Asked = append([]Line{}, h.Asked...)
	}
	return c
}

// StateAt returns the state of h as seen at now: a held hold whose deadline
// has passed is expired even before the sweeper returns its units.
func (h *Hold) StateAt(now time.Time) HoldState {
	if h.State == Held && !now.Before(h.Expires) {
		return Expired
	}
	return h.State
}

// CommandKind names a client command.
type CommandKind uint8

const (
	CmdHold       CommandKind = iota + 1 // create a hold from Lines
	CmdGet                               // read hold HoldID
	CmdConfirm                           // HELD → CONFIRMED
	CmdRelease                           // HELD → RELEASED
	CmdExtend                            // push Expires forward by TTL from now
	CmdRestock                           // admin: Minted += Qty for SKU
	CmdWriteOff                          // admin: Shrunk += min(Qty, available) for SKU
	CmdStock                             // read the stock view of SKU
	CmdWaitGet                           // read waitlist entry HoldID
	CmdWaitCancel                        // WAITING → CANCELLED for entry HoldID
	CmdRecount                           // admin: set SKU's on-hand count (recount.go)
)

var cmdNames = [...]string{CmdHold: "hold", CmdGet: "get", CmdConfirm: "confirm", CmdRelease: "release",
	CmdExtend: "extend", CmdRestock: "restock", CmdWriteOff: "write-off", CmdStock: "stock",
	CmdWaitGet: "wait-get", CmdWaitCancel: "wait-cancel",
	CmdRecount: "recount"}

func (k CommandKind) String() string { return enumName(cmdNames[:], k) }

// Command is a client request. ReqID is chosen by the runtime and echoed in
// the Reply; it must be unique among the commands in flight.
type Command struct {
	Kind    CommandKind
	ReqID   uint64
	HoldID  string        // get, confirm, release, extend
	Lines   []Line        // hold
	TTL     time.Duration // hold, extend; 0 means DefaultTTL (hold) or required (extend)
	IdemKey string        // hold, restock, write-off: optional idempotency key (stockidem.go)
	// IdemHash fingerprints the request body; a retry with the same key but
	// another hash is CodeIdempotencyReuse. The runtime computes it.
	IdemHash uint64
	Meta     string // hold: client metadata
	// Wait (hold): when the hold cannot be granted, queue it on the
	// waitlist for up to this long instead of refusing it (0: refuse).
	Wait time.Duration
	// Routed marks a hold a runtime sends on to the region a CodeRouted
	// reply named (or runs locally when that region cannot be reached):
	// the node serves it here and never routes it again.
	Routed bool
	// Partial (hold): grant each line what the region can give it instead
	// of all or nothing; a hold granted nothing at all is still refused.
	Partial bool
	// Cart (hold): the client's cart reference, stored on the hold.
	Cart string
	// Locations (hold): lines restricted to eligible locations, by SKU
	// (locations.go); a line without an entry takes the region's
	// fulfilment order, or the default location when it has none.
	Locations []LineLocations
	SKU       string // restock, write-off, stock, recount
	Qty       uint64 // restock, write-off
	// IfMatch (restock, write-off, recount): when set, the command runs
	// only if the SKU's StockView.Version is exactly this, else
	// CodePreconditionFailed and nothing changes.
	IfMatch string
	// OnHand, AsOf and Force: recount (see recount.go).
	OnHand uint64
	AsOf   time.Time
	Force  bool
}

// Reply answers one Command.
type Reply struct {
	ReqID uint64
	Kind  CommandKind
	Err   *Error
	Hold  *Hold      // hold commands: the hold as of the reply (a copy, read only: see Ready)
	Stock *StockView // stock
	// Applied is the number of units a restock or write-off changed; a
	// write-off takes at most what is available and says so here.
	Applied uint64
	// Replayed is true when an idempotent retry returned an existing hold.
	Replayed bool
	// Wait: a hold that joined the waitlist (instead of Hold), and the
	// waitlist commands (a copy, with positions while waiting).
	Wait *WaitEntry
	// Recount: what a recount did (nil for other commands).
	Recount *RecountResult
}

// StockView is one region's view of one SKU.
type StockView struct {
	SKU       string
	Region    string
	Available uint64 // here
	Held      uint64
	Sold      uint64
	Regions   []RegionStock // every region this one knows, itself included, sorted
	Global    int64         // estimate of units available everywhere
	// Version changes whenever this region's own row of the SKU or the
	// units it received from peers change (see Node.stockVersion): the
	// HTTP ETag, checked by Command.IfMatch.
	Version string
	// LastRecount is the as_of of the last recount applied here (zero if none).
	LastRecount time.Time
	// Locations: for the view of a SKU (not of one location's stock key),
	// the configured locations known here with stock of it, by id; the
	// fields above are then those of the default location.
	Locations []LocationStock
}

// LocationStock is one location's stock of a SKU as seen from a region.
type LocationStock struct {
	Location  string
	Available uint64 // here
	Held      uint64 // here
	Sold      uint64 // here
	Global    int64  // estimate of units available everywhere
	Regions   []RegionStock
}

// RegionStock is one row as seen from the viewing region.
type RegionStock struct {
	Region    string
	Available int64
	Held      uint64
	Sold      uint64
	Seq       uint64
	Age       time.Duration // time since the row was last updated here
}

// MsgType names a peer message.
type MsgType uint8

const (
	MsgRows       MsgType = iota + 1 // row versions of From changed in (PrevSeq, Seq]
	MsgRepairReq                     // To, please send your rows changed after Seq
	MsgBorrowReq                     // From asks To for Qty units of SKU
	MsgBorrowResp                    // To's answer: Rows carries the donor row
	MsgDigest                        // From's current Seq and per-SKU demand summary
	MsgAdvice                        // rebalancer advice, Epoch-ordered
)

var msgNames = [...]string{MsgRows: "rows", MsgRepairReq: "repair", MsgBorrowReq: "borrow",
	MsgBorrowResp: "borrow-resp", MsgDigest: "digest", MsgAdvice: "advice"}

func (t MsgType) String() string { return enumName(msgNames[:], t) }

// Message is everything regions (and the rebalancer) say to each other.
// To is empty for a broadcast (rows, digest, advice).
type Message struct {
	Type MsgType
	From string
	To   string
	// ID identifies a borrow request; its answer carries the same ID.
	ID uint64
	// Seq: rows: the writer's sequence after the last change included;
	// repair: send changes after Seq; digest: the writer's current sequence.
	Seq uint64
	// PrevSeq: rows: the writer's sequence before the first change included.
	// A receiver that has seen less than PrevSeq detects a gap.
	PrevSeq uint64
	// More marks a part of a multi-part rows message that is not the last.
	// A receiver whose last contiguous sequence L satisfies PrevSeq <= L
	// (single part) advances L to Seq; a multi-part snapshot advances L only
	// when every part arrived in order. Rows are merged whatever the order.
	More   bool
	SKU    string // borrow request
	Qty    uint64 // borrow request: units asked; answer: units given
	Urgent bool   // borrow request: a shopper is waiting (donor may go to zero)
	Rows   []Row  // rows, borrow answer
	Digest []SKUDigest
	Epoch  uint64 // advice
	Moves  []Move // advice
	// Homes (advice): SKUs so scarce that each is best sold from one
	// region. The set is complete: a SKU missing from the latest advice has
	// no home. See Node.route.
	Homes []Home
	// Seen (digest): per region the sender has rows of, the last contiguous
	// sequence of that region's rows it has received, sorted by region, at
	// most MaxRegions. A region that finds its own name with a sequence
	// above its own store's has lost writes: it fences itself (fence.go).
	Seen []RegionSeq
	// Fenced (digest): the sender is fenced for good, or on a restart
	// probation that a peer's claim holds (not merely on a probation that
	// ends within seconds; Node.fenceHeld), so peers do not ask it to lend
	// or route to it: it would answer with nothing.
	Fenced bool
	// Speaks is the highest wire version the sender reads, carried by
	// version-2 messages (0: a version-1 message, which does not say). The
	// transport sets it when it writes version 2; the node ignores it.
	Speaks byte
}

// Home names the region that sells a scarce SKU for every region: the
// others send it their units of the SKU and route holds they cannot cover
// to it.
type Home struct {
	SKU    string
	Region string
}

// RegionSeq is what a digest's sender has seen of one region's rows.
type RegionSeq struct {
	Region string
	Seq    uint64
}

// SKUDigest summarises one SKU at one region for peers and the rebalancer.
type SKUDigest struct {
	SKU       string
	Available uint64
	Held      uint64
	// DemandMilli is the EWMA of units requested per second, times 1000.
	DemandMilli uint64
	Rejected    uint64 // cumulative holds rejected for lack of stock
	Waiting     uint64 // units the region's waitlist asks for now
}

// Move is one piece of rebalancer advice: From sends Qty units of SKU to To.
type Move struct {
	SKU  string
	From string
	To   string
	Qty  uint64
}

// IdemEntry records an idempotency key and the hold it created, or the
// region a hold with this key was routed to (RoutedTo, HoldID empty): the
// gateway keeps that decision in the same durable batch as its CodeRouted
// answer, so a retry after a restart goes to the same region, which
// dedupes it (see Node.rememberRoute).
type IdemEntry struct {
	Key      string
	HoldID   string
	Hash     uint64
	Expires  time.Time
	RoutedTo string
}

// Persist is what one Ready asks the runtime to write durably, in one
// atomic batch, before it sends any message or delivers any reply.
type Persist struct {
	Rows []Row // own and peer rows at their new versions
	// Holds are the holds created or changed, each once, as it is at the
	// end of the Ready. Read only, and the runtime's until the Ready's
	// Advance only: the node then reuses the slice and the copies no
	// reply shares (see Ready); Hold.Clone keeps one.
	Holds        []*Hold
	DeletedHolds []string    // terminal holds past retention
	Idem         []IdemEntry // keys added
	DeletedIdem  []string    // keys past their expiry
	Seq          uint64      // own change sequence after this batch
	// PeerSeq holds the last contiguous sequence seen from each peer whose
	// value changed. Persisting it is optional (0 forces a full repair).
	PeerSeq map[string]uint64
	// Waits are waitlist entries created or changed; DeletedWaits are
	// terminal entries past retention.
	Waits        []WaitEntry
	DeletedWaits []string
	// Recounts are the as_of times of recounts applied in this batch, by
	// SKU (a runtime keeps the latest per SKU and gives them back in State).
	Recounts []RecountMark
	// Events states the changes above that downstream systems care about,
	// in order (see Event). A runtime keeping an outbox writes them in
	// this same batch.
	Events []Event
	// HoldsUnindexed and IdemUnindexed name the expiry index entries that
	// earlier Persists made and this one ends (see Deadline): a hold that
	// left HELD or whose deadline moved, an idempotency key deleted or
	// replaced, each at the deadline it was last persisted with. A runtime
	// keeping an expiry index deletes these entries before it writes the
	// entries of Holds (HELD ones) and Idem, so it needs no map of its own.
	HoldsUnindexed []Deadline
	IdemUnindexed  []Deadline
}

// Empty reports whether p asks for no write.
func (p *Persist) Empty() bool {
	return len(p.Rows) == 0 && len(p.Holds) == 0 && len(p.DeletedHolds) == 0 &&
		len(p.Idem) == 0 && len(p.DeletedIdem) == 0 && len(p.PeerSeq) == 0 && len(p.Events) == 0 &&
		len(p.Waits) == 0 && len(p.DeletedWaits) == 0 && len(p.Recounts) == 0 &&
		len(p.HoldsUnindexed) == 0 && len(p.IdemUnindexed) == 0
}

// Ready is the output of the node since the last Advance: write Persist
// (one fsync), then send Send, then deliver Reply, then call Advance.
// Everything in a Ready belongs to the runtime, except that Hold.Lines in
// Persist.Holds and Reply.Hold are shared with the node (a hold's lines
// never change): read them, never write them (Hold.Clone gives a copy),
// that a Reply.Hold may be the very copy an event of the same Ready and
// Persist.Holds point to, so a hold copy is read only too,
// and that the slices Persist.Events, Persist.Holds, Reply and Send are
// the runtime's only until this Ready's Advance: the node then reuses
// them for later Readies (poisoned first, so a late reader sees an error
// or a hold in no state, never a success). So are the hold copies that
// no reply shares (an expiry's event's Hold, the entry of Persist.Holds
// of a hold changed twice in the Ready): stage Persist.Holds and encode
// the events before Advance, and Clone a hold to keep it. Copy a Reply or
// a Message (values) to keep it; what they point to (Reply.Hold, an
// event's Wait, a message's Rows) stays valid, and so does an event's
// Hold when a Reply.Hold is the same copy.
type Ready struct {
	Persist Persist
	Send    []Message
	Reply   []Reply
	// Snapshots reports the progress of snapshots in SKU order received
	// (snapshot_sku.go), for the runtime's logs; nothing to persist.
	Snapshots []SnapshotProgress
}

// Empty reports whether the Ready carries nothing.
func (rd *Ready) Empty() bool {
	return rd.Persist.Empty() && len(rd.Send) == 0 && len(rd.Reply) == 0 && len(rd.Snapshots) == 0
}

// State is the durable state of a node, as loaded by a runtime on start.
type State struct {
	Rows    []Row
	Holds   []Hold
	Idem    []IdemEntry
	Seq     uint64
	PeerSeq map[string]uint64
	Waits   []WaitEntry // waitlist entries, any order
	// Recounts: the as_of of the last recount applied, per SKU.
	Recounts []RecountMark
	// HeldHolds: with a hold source (Config.Holds), Holds and Idem are
	// empty (the node reads them from the source) and this is the number
	// of HELD holds the source has (its expiry index's entries), for
	// Stats.ActiveHolds and MaxHolds. Ignored without a hold source.
	HeldHolds uint64
	// NewestHold (with NewestHoldKnown): with a hold source, the greatest
	// hold id the source has ("" when it has none). Ids sort by their
	// time, so a new id of a later millisecond cannot be a stored hold's
	// and needs no read of the source; unknown (NewestHoldKnown false),
	// every new id is looked up in the source.
	NewestHold      string
	NewestHoldKnown bool
}

// enumName is names[v], or "unknown" for a value without a name.
func enumName[T ~uint8](names []string, v T) string {
	if int(v) < len(names) && names[v] != "" {
		return names[v]
	}
	return "unknown"
}
