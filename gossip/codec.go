package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// Forward codec: hold operations forwarded to the owning region and their
// answers. Same conventions as the escrow wire format: magic, version, kind,
// then uvarints and length-prefixed strings; every length is checked before
// it is used, trailing bytes are refused, and decoded values are validated.
const (
	ForwardVersion     = 1
	MaxForwardBytes    = 64 << 10 // one encoded request or reply
	maxDetailLen       = 4096
	maxHoldBytes       = 32 << 10
	fwdMagic0          = 'h'
	fwdMagic1          = 'f'
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

type wenc struct{ b []byte }

func (e *wenc) u(v uint64)  { e.b = binary.AppendUvarint(e.b, v) }
func (e *wenc) s(v string)  { e.u(uint64(len(v))); e.b = append(e.b, v...) }
func (e *wenc) byte(v byte) { e.b = append(e.b, v) }
func (e *wenc) header(kind byte) {
	e.b = append(e.b, fwdMagic0, fwdMagic1, ForwardVersion, kind)
}

type wdec struct {
	b   []byte
	err error
}

func (d *wdec) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrCodec}, args...)...)
	}
}

func (d *wdec) u() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("truncated or overlong number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *wdec) bytes(limit int) []byte {
	n := d.u()
	if d.err != nil {
		return nil
	}
	if n > uint64(limit) || n > uint64(len(d.b)) {
		d.fail("field of %d bytes (limit %d, %d left)", n, limit, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *wdec) s(limit int) string { return string(d.bytes(limit)) }

func (d *wdec) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *wdec) header(kind byte) {
	if len(d.b) > MaxForwardBytes {
		d.fail("%d bytes, over the %d-byte limit", len(d.b), MaxForwardBytes)
		return
	}
	if len(d.b) < 4 || d.b[0] != fwdMagic0 || d.b[1] != fwdMagic1 {
		d.fail("missing magic")
		return
	}
	if d.b[2] != ForwardVersion {
		d.err = fmt.Errorf("%w: forward version %d (this build speaks %d)", escrow.ErrWireVersion, d.b[2], ForwardVersion)
		return
	}
	if d.b[3] != kind {
		d.fail("kind %q, want %q", d.b[3], kind)
		return
	}
	d.b = d.b[4:]
}

func (d *wdec) end() {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
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
	e := wenc{b: dst}
	e.header(kindFwdReq)
	e.s(r.From)
	e.byte(byte(r.Cmd.Kind))
	e.s(r.Cmd.HoldID)
	e.u(uint64(r.Cmd.TTL))
	return e.b, nil
}

// DecodeForwardRequest parses a forwarded hold command.
func DecodeForwardRequest(b []byte) (ForwardRequest, error) {
	var r ForwardRequest
	d := wdec{b: b}
	d.header(kindFwdReq)
	r.From = d.s(escrow.MaxRegionLen)
	r.Cmd.Kind = escrow.CommandKind(d.byte())
	r.Cmd.HoldID = d.s(escrow.MaxHoldIDLen)
	ttl := d.u()
	d.end()
	if d.err != nil {
		return ForwardRequest{}, d.err
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
	e := wenc{b: dst}
	e.header(kindFwdReply)
	if r.Failure != "" {
		e.byte(replyStatusFailure)
		f := r.Failure
		if len(f) > maxDetailLen {
			f = f[:maxDetailLen]
		}
		e.s(f)
		return e.b, nil
	}
	e.byte(replyStatusOK)
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
	e.byte(byte(rp.Kind))
	e.byte(flags)
	e.u(rp.Applied)
	if rp.Err != nil {
		detail := rp.Err.Detail
		if len(detail) > maxDetailLen {
			detail = detail[:maxDetailLen]
		}
		e.byte(byte(rp.Err.Code))
		e.s(detail)
		e.s(rp.Err.SKU)
		e.u(rp.Err.Available)
		e.s(rp.Err.Owner)
	}
	if rp.Hold != nil {
		hb := escrow.EncodeHold(nil, rp.Hold)
		if len(hb) > maxHoldBytes {
			return dst, fmt.Errorf("gossip: hold %s encodes to %d bytes, over %d", rp.Hold.ID, len(hb), maxHoldBytes)
		}
		e.u(uint64(len(hb)))
		e.b = append(e.b, hb...)
	}
	if len(e.b)-len(dst) > MaxForwardBytes {
		return dst, fmt.Errorf("gossip: forward reply of %d bytes, over %d", len(e.b)-len(dst), MaxForwardBytes)
	}
	return e.b, nil
}

// DecodeForwardReply parses the owner's answer.
func DecodeForwardReply(b []byte) (ForwardReply, error) {
	var r ForwardReply
	d := wdec{b: b}
	d.header(kindFwdReply)
	switch status := d.byte(); {
	case d.err != nil:
	case status == replyStatusFailure:
		r.Failure = d.s(maxDetailLen)
		d.end()
		if d.err == nil && r.Failure == "" {
			d.fail("empty failure")
		}
		if d.err != nil {
			return ForwardReply{}, d.err
		}
		return r, nil
	case status != replyStatusOK:
		d.fail("unknown status %d", status)
	}
	rp := &r.Reply
	rp.Kind = escrow.CommandKind(d.byte())
	flags := d.byte()
	if flags&^(replyFlagReplayed|replyFlagErr|replyFlagHold) != 0 {
		d.fail("unknown flags %#x", flags)
	}
	rp.Replayed = flags&replyFlagReplayed != 0
	rp.Applied = d.u()
	if flags&replyFlagErr != 0 {
		e := &escrow.Error{Code: escrow.Code(d.byte())}
		e.Detail = d.s(maxDetailLen)
		e.SKU = d.s(escrow.MaxSKULen)
		e.Available = d.u()
		e.Owner = d.s(escrow.MaxRegionLen)
		if d.err == nil && (e.Code < escrow.CodeInvalid || e.Code > escrow.CodeInvariant) {
			d.fail("unknown error code %d", e.Code)
		}
		if d.err == nil && e.Owner != "" {
			if err := escrow.ValidRegion(e.Owner); err != nil {
				d.fail("error owner: %v", err)
			}
		}
		rp.Err = e
	}
	if flags&replyFlagHold != 0 {
		hb := d.bytes(maxHoldBytes)
		if d.err == nil {
			h, err := escrow.DecodeHold(hb)
			if err != nil {
				d.fail("hold: %v", err)
			}
			rp.Hold = &h
		}
	}
	d.end()
	if d.err != nil {
		return ForwardReply{}, d.err
	}
	if !forwardable(rp.Kind) {
		return ForwardReply{}, fmt.Errorf("%w: reply kind %d is not a forwarded command", ErrCodec, rp.Kind)
	}
	return r, nil
}
