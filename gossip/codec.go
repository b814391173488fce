package gossip

import (
	"errors"
	"fmt"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// Forward codec: hold operations forwarded to the owning region and their
// answers. Written with escrow's WireEncoder and WireDecoder, so it has the
// conventions of the escrow wire format: magic, version, kind, then shortest
// uvarints and length-prefixed strings; every length is checked before it is
// used, trailing bytes are refused, and decoded values are validated.
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
	replyStatusOK      = 0
	replyStatusFailure = 1
)

// ErrCodec is wrapped by every forward-codec decoding error.
var ErrCodec = errors.New("gossip: bad forward data")

// ForwardRequest is a hold command sent to the region that owns the hold.
type ForwardRequest struct {
	From string // asking region
	Cmd  escrow.Command
}

// ForwardReply is the owner's answer: the escrow reply, or Failure when the
// owner could not run the command (closing, overloaded, timed out).
type ForwardReply struct {
	Reply   escrow.Reply
	Failure string
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

// forwardable reports whether a command kind may be forwarded to an owner.
func forwardable(k escrow.CommandKind) bool {
	switch k {
	case escrow.CmdGet, escrow.CmdConfirm, escrow.CmdRelease, escrow.CmdExtend:
		return true
	}
	return false
}

// EncodeForwardRequest encodes a forwarded hold command. Only the fields
// hold operations use travel: kind, hold id and TTL (extend).
func EncodeForwardRequest(dst []byte, r *ForwardRequest) ([]byte, error) {
	if !forwardable(r.Cmd.Kind) {
		return dst, fmt.Errorf("gossip: %s commands are not forwarded", r.Cmd.Kind)
	}
	if r.Cmd.TTL < 0 {
		return dst, fmt.Errorf("gossip: negative TTL %v", r.Cmd.TTL)
	}
	e := escrow.WireEncoder{B: dst}
	e.Header(ForwardVersion, kindFwdReq)
	e.String(r.From)
	e.Byte(byte(r.Cmd.Kind))
	e.String(r.Cmd.HoldID)
	e.Uvarint(uint64(r.Cmd.TTL))
	return e.B, nil
}

// DecodeForwardRequest parses a forwarded hold command.
func DecodeForwardRequest(b []byte) (ForwardRequest, error) {
	var r ForwardRequest
	d := forwardDecoder(b, kindFwdReq)
	r.From = d.String(escrow.MaxRegionLen)
	r.Cmd.Kind = escrow.CommandKind(d.Byte())
	r.Cmd.HoldID = d.String(escrow.MaxHoldIDLen)
	ttl := d.Uvarint()
	d.End()
	if d.Err() != nil {
		return ForwardRequest{}, d.Err()
	}
	if ttl > uint64(100*365*24*time.Hour) {
		return ForwardRequest{}, fmt.Errorf("%w: ttl %d ns out of range", ErrCodec, ttl)
	}
	r.Cmd.TTL = time.Duration(ttl)
	if !forwardable(r.Cmd.Kind) {
		return ForwardRequest{}, fmt.Errorf("%w: command kind %d is not forwarded", ErrCodec, r.Cmd.Kind)
	}
	if err := escrow.ValidRegion(r.From); err != nil {
		return ForwardRequest{}, fmt.Errorf("%w: from: %v", ErrCodec, err)
	}
	if _, err := escrow.OwnerOf(r.Cmd.HoldID); err != nil {
		return ForwardRequest{}, fmt.Errorf("%w: %v", ErrCodec, err)
	}
	return r, nil
}

// EncodeForwardReply encodes the owner's answer.
func EncodeForwardReply(dst []byte, r *ForwardReply) ([]byte, error) {
	e := escrow.WireEncoder{B: dst}
	e.Header(ForwardVersion, kindFwdReply)
	if r.Failure != "" {
		e.Byte(replyStatusFailure)
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
	case status == replyStatusFailure:
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
	if flags&^(replyFlagReplayed|replyFlagErr|replyFlagHold) != 0 {
		d.Fail("unknown flags %#x", flags)
	}
	rp.Replayed = flags&replyFlagReplayed != 0
	rp.Applied = d.Uvarint()
	if flags&replyFlagErr != 0 {
		e := &escrow.Error{Code: escrow.Code(d.Byte())}
		e.Detail = d.String(maxDetailLen)
		e.SKU = d.String(escrow.MaxSKULen)
		e.Available = d.Uvarint()
		e.Owner = d.String(escrow.MaxRegionLen)
		if d.Err() == nil && (e.Code < escrow.CodeInvalid || e.Code > escrow.CodeInvariant) {
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
	d.End()
	if d.Err() != nil {
		return ForwardReply{}, d.Err()
	}
	if !forwardable(rp.Kind) {
		return ForwardReply{}, fmt.Errorf("%w: reply kind %d is not a forwarded command", ErrCodec, rp.Kind)
	}
	return r, nil
}
