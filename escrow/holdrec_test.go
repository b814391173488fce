package escrow

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// TestHoldRecRoundTrip: a hold kept as a compact record gives back the
// same Hold (times in UTC, as the store decodes them), with its id inline
// or, for a long region name, behind the record's pointer.
func TestHoldRecRoundTrip(t *testing.T) {
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	base := Hold{ID: "eu-01hf7yatk7bdfjzxq5", Lines: []Line{{SKU: "A", Qty: 1}, {SKU: "B", Qty: 2}}, State: Held,
		Created: at(0), Expires: at(10 * time.Minute), MaxExpires: at(time.Hour), Updated: at(time.Second)}
	long := base
	long.ID = strings.Repeat("r", MaxRegionLen) + "-01hf7yatk7bdfjzxq5"
	keyed := base
	keyed.IdemKey, keyed.State = "cart-7", Confirmed
	full := long
	full.Meta, full.Cart, full.Asked = "m", "c-1", []Line{{SKU: "A", Qty: 3}, {SKU: "B", Qty: 2}}
	for _, h := range []Hold{base, long, keyed, full} {
		r := newHoldRec(&h)
		if got := r.hold(); !reflect.DeepEqual(got, h) {
			t.Errorf("round trip of %s:\n got %+v\nwant %+v", h.ID, got, h)
		}
		if inline := len(h.ID) <= holdIDInline; inline != (r.idLen > 0) {
			t.Errorf("hold %s (%d bytes): inline %v, want %v", h.ID, len(h.ID), r.idLen > 0, inline)
		}
	}
}

// TestLongRegionHolds: a region whose hold ids do not fit in the record
// grants, finds, confirms and restores holds like any other.
func TestLongRegionHolds(t *testing.T) {
	region := strings.Repeat("r", MaxRegionLen)
	tn := newTNode(t, Config{Region: region})
	tn.restock("A", 2)
	h := tn.hold(Line{SKU: "A", Qty: 1})
	if len(h.ID) <= holdIDInline || !strings.HasPrefix(h.ID, region+"-") {
		t.Fatalf("hold id %q: want one longer than %d bytes", h.ID, holdIDInline)
	}
	if got, ok := tn.n.Hold(h.ID); !ok || got.ID != h.ID {
		t.Fatalf("Hold(%s) = %+v, %v", h.ID, got, ok)
	}
	tn.restart()
	r := tn.do(Command{Kind: CmdConfirm, HoldID: h.ID})
	if r.Err != nil || r.Hold == nil || r.Hold.State != Confirmed || r.Hold.ID != h.ID {
		t.Fatalf("confirm after restart: %+v", r)
	}
}

// TestRetiredHoldLeavesItsKey: a key remembered longer than its hold (a
// short hold retention) keeps a copy of the hold id, not the retired
// hold's record, into which the id it was given points. After a restart
// the key shares the restored hold's id again.
func TestRetiredHoldLeavesItsKey(t *testing.T) {
	tn := newTNode(t, Config{Region: "eu", HoldRetain: time.Second, IdemTTL: time.Hour})
	tn.restock("A", 2)
	r := tn.do(Command{Kind: CmdHold, Lines: []Line{{SKU: "A", Qty: 1}}, IdemKey: "k", IdemHash: 1})
	if r.Err != nil || r.Hold == nil {
		t.Fatalf("hold: %+v", r)
	}
	id := r.Hold.ID
	inRec := func(s string, h *holdRec) bool { return unsafe.StringData(s) == &h.idBuf[0] }
	tn.restart()
	h := tn.n.holds.get(id)
	if h == nil || h.idLen == 0 || !inRec(tn.n.idem["k"].HoldID, h) {
		t.Fatalf("after restart the key's hold id does not share the hold's")
	}
	if r := tn.do(Command{Kind: CmdConfirm, HoldID: id}); r.Err != nil {
		t.Fatalf("confirm: %v", r.Err)
	}
	tn.tick(2 * time.Second)
	if tn.n.holds.get(id) != nil {
		t.Fatal("the hold was not retired")
	}
	e := tn.n.idem["k"]
	if e == nil || e.HoldID != id || inRec(e.HoldID, h) {
		t.Fatalf("key after retirement: %+v; its id still in the retired record: %v", e, e != nil && inRec(e.HoldID, h))
	}
}
