package gossip

import (
	"errors"
	"fmt"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// Forward codec: hold operations forwarded to the owning region, routed
// holds sent to the home of a scarce SKU, and their answers. Written with
// escrow's WireEncoder and WireDecoder, so it has the conventions of the
// escrow wire format: magic, version, kind, then shortest uvarints and
// length-prefixed strings; every length is checked before it is used,
// trailing bytes are refused, and decoded values are validated.
//
// A request is: from, command kind, hold id, TTL; a hold command (only a
// routed one) continues with its lines, idempotency key and hash, metadata
// and a flags byte that must be exactly requestFlagRouted. Routed holds
// were added without a version bump: the encodings of get, confirm,
// release and extend are byte for byte what they were, so regions of the
// two builds keep forwarding those to each other during a rolling upgrade,
// and an older home refuses a routed hold as an unknown kind (its caller
// then runs the hold locally, as for any failed forward).
//
// The waitlist was added the same way: waitlist get and cancel encode as
// get does (an older owner refuses them: 503 at the caller); a routed hold
// that may wait sets requestFlagWait and carries the wait after the cart;
// a reply with a waitlist entry sets replyFlagWait and carries the entry
// (encodeWaitEntry) after the hold, if any.
const (
	ForwardVersion     = 1
	MaxForwardBytes    = 64 << 10 // one encoded request or reply
	maxDetailLen       = 4096
	maxHoldBytes       = 32 << 10
	kindFwdReq         = 'Q'
	kindFwdReply       = 'P'
	replyFlagReplayed  = 1
	replyFlagErr       = 2
	replyFlagHold      = 4
	replyFlagWait      = 8
	replyStatusOK      = 0
	replyStatusFailure = 1 // the command may or may not have been applied
	replyStatusRefused = 2 // the command was not run (ForwardReply.Refused)
	requestFlagRouted  = 1
	// requestFlagPartial: a partial hold; requestFlagCart: a cart
	// reference follows the flags. Holds without them encode as before.
	requestFlagPartial = 2
	requestFlagCart    = 4
	requestFlagWait    = 8 // the hold may wait: its wait follows
	// requestFlagLocations: the lines' eligible locations follow the wait
	// (Command.Locations: count, then per entry SKU, split byte, count
	// and location ids). Holds without them encode as before; an older
	// home refuses the flag (its caller runs the hold locally).
	requestFlagLocations = 16
	// maxForwardTTL bounds a forwarded TTL far above any hold lifetime;
	// the node applies its own limits.
	maxForwardTTL = 100 * 365 * 24 * time.Hour
)

// ErrCodec is wrapped by every forward-codec decoding error.
var ErrCodec = errors.New("gossip: bad forward data")

// ForwardRequest is a hold command sent to the region that owns the hold,
// or a routed hold (Cmd.Routed) sent to the home of a scarce SKU.
type ForwardRequest struct {
	From string // asking region
	Cmd  escrow.Command
}

// ForwardReply is the owner's answer: the escrow reply, or Failure when the
// owner could not answer it (closing, overloaded, timed out, its store
// failing). Refused, with Failure, says that the command was certainly
// not run (busy, not allowed, bad request, the region's queue full or
// closing: see region.ErrNotRun); without it the command may have been applied.
type ForwardReply struct {
	Reply   escrow.Reply
	Failure string
	Refused bool
}

// forwardDecoder starts decoding b as a forward value of the given kind:
// size limit, magic, version and kind are checked before any field is read.
func forwardDecoder(b []byte, kind byte) escrow.WireDecoder {
	d := escrow.NewWireDecoder(b, ErrCodec)
	if len(b) > MaxForwardBytes {
		d.Fail("%d bytes, over the %d-byte limit", len(b), MaxForwardBytes)
	}
	d.Header(ForwardVersion, kind)
	return d
}

// forwardable reports whether a command kind may be forwarded to another
// region: operations on a hold, and holds (routed ones only, see
// checkForwardCmd).
func forwardable(k escrow.CommandKind) bool {
	switch k {
	case escrow.CmdGet, escrow.CmdConfirm, escrow.CmdRelease, escrow.CmdExtend, escrow.CmdHold,
		escrow.CmdWaitGet, escrow.CmdWaitCancel:
		return true
	}
	return false
}

// checkForwardCmd checks what may be forwarded, on both sides: a hold only
// when it is routed (a plain hold is served where it arrives; forwarding it
// would let a region spend another's slice on its own decision), with the
// cart, key and metadata the node would accept; an operation on a hold only
// with a well-formed hold id and never marked routed.
func checkForwardCmd(c *escrow.Command) error {
	if !forwardable(c.Kind) {
		return fmt.Errorf("%s commands are not forwarded", c.Kind)
	}
	if c.TTL < 0 || c.TTL > maxForwardTTL {
		return fmt.Errorf("ttl %v out of range", c.TTL)
	}
	if c.Wait < 0 || c.Wait > maxForwardTTL || (c.Wait != 0 && c.Kind != escrow.CmdHold) {
		return fmt.Errorf("wait %v out of range for a %s command", c.Wait, c.Kind)
	}
	if c.Kind != escrow.CmdHold {
		if c.Routed {
			return fmt.Errorf("a %s command cannot be routed", c.Kind)
		}
		if _, err := escrow.OwnerOf(c.HoldID); err != nil {
			return err
		}
		return nil
	}
	if !c.Routed {
		return errors.New("only routed holds are forwarded")
	}
	if c.HoldID != "" {
		return errors.New("a hold command carries no hold id")
	}
	if _, err := escrow.NormalizeLines(c.Lines); err != nil {
		return err
	}
	if err := escrow.ValidIdemKey(c.IdemKey); err != nil {
		return err
	}
	if len(c.Meta) > escrow.MaxMetaLen {
		return fmt.Errorf("metadata of %d bytes, over %d", len(c.Meta), escrow.MaxMetaLen)
	}
	if err := escrow.ValidCart(c.Cart); err != nil {
		return err
	}
	return nil
}

// EncodeForwardRequest encodes a forwarded command. Only the fields its
// kind uses travel: hold id and TTL (extend) for operations on a hold;
// lines, TTL, idempotency key and hash, metadata and the routed flag for a
// routed hold. A command that DecodeForwardRequest would refuse is not
// encoded.
func EncodeForwardRequest(dst []byte, r *ForwardRequest) ([]byte, error) {
	if err := checkForwardCmd(&r.Cmd); err != nil {
		return dst, fmt.Errorf("gossip: forward request: %w", err)
	}
	e := escrow.WireEncoder{B: dst}
	e.Header(ForwardVersion, kindFwdReq)
	e.String(r.From)
	e.Byte(byte(r.Cmd.Kind))
	e.String(r.Cmd.HoldID)
	e.Uvarint(uint64(r.Cmd.TTL))
	if r.Cmd.Kind == escrow.CmdHold {
		e.Uvarint(uint64(len(r.Cmd.Lines)))
		for _, l := range r.Cmd.Lines {
			e.String(l.SKU)
			e.Uvarint(l.Qty)
		}
		e.String(r.Cmd.IdemKey)
		e.Uvarint(r.Cmd.IdemHash)
		e.String(r.Cmd.Meta)
		flags := byte(requestFlagRouted)
		if r.Cmd.Partial {
			flags |= requestFlagPartial
		}
		if r.Cmd.Cart != "" {
			flags |= requestFlagCart
		}
		if r.Cmd.Wait != 0 {
			flags |= requestFlagWait
		}
		if len(r.Cmd.Locations) > 0 {
			flags |= requestFlagLocations
		}
		e.Byte(flags)
		if r.Cmd.Cart != "" {
			e.String(r.Cmd.Cart)
		}
		if r.Cmd.Wait != 0 {
			e.Uvarint(uint64(r.Cmd.Wait))
		}
		if len(r.Cmd.Locations) > 0 {
			e.Uvarint(uint64(len(r.Cmd.Locations)))
			for _, ll := range r.Cmd.Locations {
				e.String(ll.SKU)
				split := byte(0)
				if ll.Split {
					split = 1
				}
				e.Byte(split)
				e.Uvarint(uint64(len(ll.Locations)))
				for _, l := range ll.Locations {
					e.String(l)
				}
			}
		}
	}
	if len(e.B)-len(dst) > MaxForwardBytes {
		return dst, fmt.Errorf("gossip: forward request of %d bytes, over %d", len(e.B)-len(dst), MaxForwardBytes)
	}
	return e.B, nil
}

// DecodeForwardRequest parses a forwarded command. The lines of a hold
// are kept as sent (the node normalizes them) but must pass
// escrow.NormalizeLines.
func DecodeForwardRequest(b []byte) (ForwardRequest, error) {
	var r ForwardRequest
	d := forwardDecoder(b, kindFwdReq)
	r.From = d.String(escrow.MaxRegionLen)
	r.Cmd.Kind = escrow.CommandKind(d.Byte())
	r.Cmd.HoldID = d.String(escrow.MaxHoldIDLen)
	ttl := d.Uvarint()
	if d.Err() == nil && r.Cmd.Kind == escrow.CmdHold {
		n := d.Uvarint()
		switch {
		case d.Err() != nil:
		case n == 0 || n > escrow.MaxLines:
			d.Fail("%d lines (1 to %d)", n, escrow.MaxLines)
		default:
			// Lines are read one by one, so a lying count fails on the
			// data it does not have rather than allocating for it.
			r.Cmd.Lines = make([]escrow.Line, 0, n)
			for i := uint64(0); i < n && d.Err() == nil; i++ {
				l := escrow.Line{SKU: d.String(escrow.MaxStockKeyLen)}
				l.Qty = d.Uvarint()
				r.Cmd.Lines = append(r.Cmd.Lines, l)
			}
		}
		r.Cmd.IdemKey = d.String(escrow.MaxIdemKeyLen)
		r.Cmd.IdemHash = d.Uvarint()
		r.Cmd.Meta = d.String(escrow.MaxMetaLen)
		flags := d.Byte()
		if d.Err() == nil && flags&^(requestFlagPartial|requestFlagCart|requestFlagWait|requestFlagLocations) != requestFlagRouted {
			d.Fail("hold flags %#x: only routed holds are forwarded", flags)
		}
		r.Cmd.Routed = true
		r.Cmd.Partial = flags&requestFlagPartial != 0
		if flags&requestFlagCart != 0 {
			r.Cmd.Cart = d.String(escrow.MaxCartLen)
			if d.Err() == nil && (r.Cmd.Cart == "" || escrow.ValidCart(r.Cmd.Cart) != nil) {
				d.Fail("bad cart reference")
			}
		}
		if flags&requestFlagWait != 0 {
			w := d.Uvarint()
			if d.Err() == nil && (w == 0 || w > uint64(maxForwardTTL)) {
				d.Fail("wait %d ns out of range", w)
			}
			r.Cmd.Wait = time.Duration(w)
		}
		if flags&requestFlagLocations != 0 {
			r.Cmd.Locations = decodeLineLocations(&d)
		}
	}
	d.End()
	if d.Err() != nil {
		return ForwardRequest{}, d.Err()
	}
	if ttl > uint64(maxForwardTTL) {
		return ForwardRequest{}, fmt.Errorf("%w: ttl %d ns out of range", ErrCodec, ttl)
	}
	r.Cmd.TTL = time.Duration(ttl)
	if err := escrow.ValidRegion(r.From); err != nil {
		return ForwardRequest{}, fmt.Errorf("%w: from: %v", ErrCodec, err)
	}
	if err := checkForwardCmd(&r.Cmd); err != nil {
		return ForwardRequest{}, fmt.Errorf("%w: %v", ErrCodec, err)
	}
	return r, nil
}

// EncodeForwardReply encodes the owner's answer.
func EncodeForwardReply(dst []byte, r *ForwardReply) ([]byte, error) {
	e := escrow.WireEncoder{B: dst}
	e.Header(ForwardVersion, kindFwdReply)
	if r.Failure != "" {
		if r.Refused {
			e.Byte(replyStatusRefused)
		} else {
			e.Byte(replyStatusFailure)
		}
		f := r.Failure
		if len(f) > maxDetailLen {
			f = f[:maxDetailLen]
		}
		e.String(f)
		return e.B, nil
	}
	e.Byte(replyStatusOK)
	rp := &r.Reply
	var flags byte
	if rp.Replayed {
		flags |= replyFlagReplayed
	}
	if rp.Err != nil {
		flags |= replyFlagErr
	}
	if rp.Hold != nil {
		flags |= replyFlagHold
	}
	if rp.Wait != nil {
		flags |= replyFlagWait
	}
	e.Byte(byte(rp.Kind))
	e.Byte(flags)
	e.Uvarint(rp.Applied)
	if rp.Err != nil {
		detail := rp.Err.Detail
		if len(detail) > maxDetailLen {
			detail = detail[:maxDetailLen]
		}
		e.Byte(byte(rp.Err.Code))
		e.String(detail)
		e.String(rp.Err.SKU)
		e.Uvarint(rp.Err.Available)
		e.String(rp.Err.Owner)
	}
	if rp.Hold != nil {
		hb := escrow.EncodeHold(nil, rp.Hold)
		if len(hb) > maxHoldBytes {
			return dst, fmt.Errorf("gossip: hold %s encodes to %d bytes, over %d", rp.Hold.ID, len(hb), maxHoldBytes)
		}
		e.Uvarint(uint64(len(hb)))
		e.B = append(e.B, hb...)
	}
	if rp.Wait != nil {
		encodeWaitEntry(&e, rp.Wait)
	}
	if len(e.B)-len(dst) > MaxForwardBytes {
		return dst, fmt.Errorf("gossip: forward reply of %d bytes, over %d", len(e.B)-len(dst), MaxForwardBytes)
	}
	return e.B, nil
}

// DecodeForwardReply parses the owner's answer.
func DecodeForwardReply(b []byte) (ForwardReply, error) {
	var r ForwardReply
	d := forwardDecoder(b, kindFwdReply)
	switch status := d.Byte(); {
	case d.Err() != nil:
	case status == replyStatusFailure || status == replyStatusRefused:
		r.Refused = status == replyStatusRefused
		r.Failure = d.String(maxDetailLen)
		d.End()
		if d.Err() == nil && r.Failure == "" {
			d.Fail("empty failure")
		}
		if d.Err() != nil {
			return ForwardReply{}, d.Err()
		}
		return r, nil
	case status != replyStatusOK:
		d.Fail("unknown status %d", status)
	}
	rp := &r.Reply
	rp.Kind = escrow.CommandKind(d.Byte())
	flags := d.Byte()
	if flags&^(replyFlagReplayed|replyFlagErr|replyFlagHold|replyFlagWait) != 0 {
		d.Fail("unknown flags %#x", flags)
	}
	rp.Replayed = flags&replyFlagReplayed != 0
	rp.Applied = d.Uvarint()
	if flags&replyFlagErr != 0 {
		e := &escrow.Error{Code: escrow.Code(d.Byte())}
		e.Detail = d.String(maxDetailLen)
		e.SKU = d.String(escrow.MaxStockKeyLen)
		e.Available = d.Uvarint()
		e.Owner = d.String(escrow.MaxRegionLen)
		// CodeRouted is refused: a forwarded hold is a routed one, which
		// the home serves itself, and no other command is routed; a peer
		// that answers it anyway is treated as a failed forward. CodeFenced
		// and CodeHoldCapacity travel: the caller acts on them (a routed
		// hold refused by a fenced home runs here).
		// CodeWaitlistFull travels too (a routed hold that may wait, refused
		// by a full waitlist at the home: 429 to the shopper).
		if d.Err() == nil && (e.Code < escrow.CodeInvalid || (e.Code > escrow.CodeHoldCapacity && e.Code != escrow.CodeWaitlistFull) ||
			e.Code == escrow.CodeRouted) {
			d.Fail("unknown error code %d", e.Code)
		}
		if d.Err() == nil && e.Owner != "" {
			if err := escrow.ValidRegion(e.Owner); err != nil {
				d.Fail("error owner: %v", err)
			}
		}
		rp.Err = e
	}
	if flags&replyFlagHold != 0 {
		hb := d.Bytes(maxHoldBytes)
		if d.Err() == nil {
			h, err := escrow.DecodeHold(hb)
			if err != nil {
				d.Fail("hold: %v", err)
			}
			rp.Hold = &h
		}
	}
	if flags&replyFlagWait != 0 && d.Err() == nil {
		w := decodeWaitEntry(&d)
		rp.Wait = &w
	}
	d.End()
	if d.Err() != nil {
		return ForwardReply{}, d.Err()
	}
	if !forwardable(rp.Kind) {
		return ForwardReply{}, fmt.Errorf("%w: reply kind %d is not a forwarded command", ErrCodec, rp.Kind)
	}
	return r, nil
}

// decodeLineLocations reads Command.Locations: at least one entry, at most
// one per cart line, each with at most escrow.MaxLineLocations valid ids.
func decodeLineLocations(d *escrow.WireDecoder) []escrow.LineLocations {
	n := d.Uvarint()
	if d.Err() != nil {
		return nil
	}
	if n == 0 || n > escrow.MaxLines {
		d.Fail("%d line locations (1 to %d)", n, escrow.MaxLines)
		return nil
	}
	out := make([]escrow.LineLocations, 0, n)
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		ll := escrow.LineLocations{SKU: d.String(escrow.MaxSKULen)}
		switch b := d.Byte(); b {
		case 0:
		case 1:
			ll.Split = true
		default:
			d.Fail("split byte %d", b)
		}
		k := d.Uvarint()
		if d.Err() == nil && k > escrow.MaxLineLocations {
			d.Fail("%d locations on a line (at most %d)", k, escrow.MaxLineLocations)
		}
		for j := uint64(0); j < k && d.Err() == nil; j++ {
			l := d.String(escrow.MaxLocationLen)
			if d.Err() == nil && escrow.ValidLocation(l) != nil {
				d.Fail("bad location %q", l)
			}
			ll.Locations = append(ll.Locations, l)
		}
		if d.Err() == nil && escrow.ValidSKU(ll.SKU) != nil {
			d.Fail("bad sku %q", ll.SKU)
		}
		out = append(out, ll)
	}
	return out
}
