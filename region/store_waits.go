package region

// Waitlist entries in the store: w/<entry id> → the entry, in any state.
// An entry's placement order (Seq) and deadline are in its value, so the
// node rebuilds its queues and deadline heap from the entries at restart;
// no index key is needed (entries are few: Config.MaxWaiters per region).

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

const waitValueVersion = 1

func appendWaitKey(dst []byte, id string) []byte {
	dst = append(dst, pfxWait...)
	return append(dst, id...)
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendWaitEntry encodes e (its id is in the key; Position is not kept).
func appendWaitEntry(dst []byte, e *escrow.WaitEntry) []byte {
	dst = append(dst, waitValueVersion, byte(e.State))
	dst = binary.AppendUvarint(dst, e.Seq)
	dst = appendU64(dst, timeOrd(e.Created))
	dst = appendU64(dst, timeOrd(e.Deadline))
	dst = appendU64(dst, timeOrd(e.Updated))
	dst = binary.AppendUvarint(dst, uint64(e.TTL))
	dst = appendStr(dst, e.HoldID)
	dst = appendStr(dst, e.IdemKey)
	dst = appendStr(dst, e.Meta)
	dst = binary.AppendUvarint(dst, uint64(len(e.Lines)))
	for _, l := range e.Lines {
		dst = appendStr(dst, l.SKU)
		dst = binary.AppendUvarint(dst, l.Qty)
	}
	return dst
}

type waitReader struct {
	b   []byte
	err error
}

func (r *waitReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("truncated")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *waitReader) u64() uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.err = fmt.Errorf("truncated")
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *waitReader) str(limit int) string {
	n := r.uvarint()
	if r.err != nil || n > uint64(limit) || n > uint64(len(r.b)) {
		if r.err == nil {
			r.err = fmt.Errorf("string of %d bytes", n)
		}
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func decodeWaitEntry(id string, v []byte) (escrow.WaitEntry, error) {
	e := escrow.WaitEntry{ID: id}
	if len(v) < 2 || v[0] != waitValueVersion {
		return e, fmt.Errorf("waitlist entry: unknown value version")
	}
	e.State = escrow.WaitState(v[1])
	r := &waitReader{b: v[2:]}
	e.Seq = r.uvarint()
	e.Created = ordTime(r.u64())
	e.Deadline = ordTime(r.u64())
	e.Updated = ordTime(r.u64())
	e.TTL = time.Duration(r.uvarint())
	e.HoldID = r.str(escrow.MaxHoldIDLen)
	e.IdemKey = r.str(escrow.MaxIdemKeyLen)
	e.Meta = r.str(escrow.MaxMetaLen)
	n := r.uvarint()
	if r.err == nil && (n == 0 || n > escrow.MaxLines) {
		r.err = fmt.Errorf("%d lines", n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		e.Lines = append(e.Lines, escrow.Line{SKU: r.str(escrow.MaxStockKeyLen), Qty: r.uvarint()})
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return e, fmt.Errorf("waitlist entry: %v", r.err)
	}
	if e.State < escrow.Waiting || e.State > escrow.WaitExpired || e.Seq == 0 {
		return e, fmt.Errorf("waitlist entry: state %d, seq %d", e.State, e.Seq)
	}
	return e, nil
}

// validateWaits rejects entries Load would refuse.
func (s *Store) validateWaits(p *escrow.Persist) error {
	for i := range p.Waits {
		e := &p.Waits[i]
		if owner, err := escrow.OwnerOf(e.ID); err != nil || owner != s.region {
			return fmt.Errorf("region store: waitlist entry %q does not belong to region %s", e.ID, s.region)
		}
		if e.State < escrow.Waiting || e.State > escrow.WaitExpired || e.Seq == 0 || len(e.Lines) == 0 || len(e.Lines) > escrow.MaxLines {
			return fmt.Errorf("region store: waitlist entry %s has state %d, seq %d and %d lines", e.ID, e.State, e.Seq, len(e.Lines))
		}
	}
	return nil
}

// stageWaits writes the changed and deleted entries of p.
func stageWaits(w *batchWriter, p *escrow.Persist, k, v []byte) ([]byte, []byte) {
	for i := range p.Waits {
		e := &p.Waits[i]
		k = appendWaitKey(k[:0], e.ID)
		v = appendWaitEntry(v[:0], e)
		w.set(k, v)
	}
	for _, id := range p.DeletedWaits {
		k = appendWaitKey(k[:0], id)
		w.del(k)
	}
	return k, v
}
