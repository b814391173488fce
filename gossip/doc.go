// Package gossip carries escrow messages between holdfast regions over NATS.
//
// A region's escrow.Node decides everything (what to replicate, when to
// repair, whom to borrow from); this package only routes its messages,
// checks what comes in, forwards hold operations to the owning region and
// routed holds to the home of a scarce SKU. It never imports package region: the
// region runtime satisfies Inbox and uses *Transport as its region.Transport.
//
// # Subjects
//
// All subjects live under holdfast.<cluster>:
//
//	rows.<from>          row deltas broadcast by region <from> after they are durable
//	digest.<from>        periodic digest of <from> (sequence, per-SKU stock and demand)
//	borrow.<to>.<from>   directed messages from <from> to <to>: borrow request and
//	                     answer, repair request and repair answer (rows)
//	advice               rebalancer advice (escrow.MsgAdvice)
//	events.<region>.>    not gossip: the region's durable event log, published to
//	                     JetStream by eventlog/jsrelay (docs/events.md)
//	hold.<owner>         NATS request/reply: hold operations forwarded to the owner,
//	                     and routed holds sent to the home of a scarce SKU
//
// The sender's region is a subject token on every subject a region
// publishes (the directed subject carries both ends), so NATS permissions
// can restrict each region's credentials to its own subjects: region eu
// publishes rows.eu, digest.eu, borrow.*.eu, events.eu.> (its event relay) and hold.* (requests),
// and subscribes to rows.*, digest.*, borrow.eu.*, advice and hold.eu.
// Inbound messages are checked against the subject: the region named by the
// subject must be Message.From and the writer of every row it carries.
//
// # Signatures
//
// In a cluster whose membership lists public keys, every message a region
// publishes — rows, digests, directed messages, forwarded commands and
// their replies — travels in an envelope signed with the region's ed25519
// key (sign.go), and the rebalancer signs its advice. The signature covers
// the subject (a forward reply: the request's signature), so a message is
// accepted only on the subject it was signed for, by a receiver that
// verifies it against the public key of the region it speaks for
// (Message.From, ForwardRequest.From; advice: the rebalancer). Forwarded
// commands also carry a timestamp and nonce: the owner accepts each once,
// within ForwardWindow. Without keys the cluster runs unsigned. Repair
// requests are rate-limited per peer and repair answers held to a byte
// budget per peer (limits.go).
//
// # Why borrow and repair use plain publish, not NATS request/reply
//
// A donor may answer a borrow request only after its own Sent change is
// durable, which happens in a later Ready of its apply loop, and a repair
// answer may be several messages. The escrow node already correlates answers
// with requests (Message.ID) and enforces its own deadlines, and a lost or
// duplicated answer is harmless because units travel inside the donor's
// cumulative row. Request/reply would make the transport keep reply inboxes
// alive across the donor's persistence step and would add a second, competing
// timeout; plain publish on a directed subject keeps the transport stateless.
// Hold operations (confirm, release, extend, get) do use request/reply: the
// caller is an HTTP client waiting for exactly one answer from the owner,
// and "no responders" is the signal for a 503. So do routed holds, for the
// same reason; there "no responders" makes the caller run the hold locally.
//
// # Faults
//
// Send never blocks: messages go into a bounded queue drained by one
// publisher goroutine, which coalesces consecutive row deltas into one
// message. A full queue or a down connection drops (counted); the escrow
// anti-entropy (digests, gap detection, repair) recovers whatever was lost.
// Inbound messages are verified, then decoded with escrow.DecodeMessage;
// unsigned or badly signed (in a signed cluster), corrupt, truncated,
// oversized, future-version, misrouted and replayed messages are counted,
// logged at most once per interval, and dropped.
package gossip
