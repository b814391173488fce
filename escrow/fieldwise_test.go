package escrow

import (
	"reflect"
	"testing"
	"time"
)

// The hold copy (holdRec.fillHold), the hold event (Event.setHold) and the
// poisoning of a recycled message (poisonMessages) write their struct
// field by field instead of assigning a whole value, to spare the bulk
// write barrier. Each must still write every field: the slot may hold
// another hold's copy, a poisoned event or an old message. These tests
// start from a slot whose every field is set (garbage) and fail when a
// field keeps it, as it would if a field were added to Hold, Event or
// Message and not to the writer.

// garbage sets every field of the struct v points to a non-zero value.
func garbage(t *testing.T, v any) {
	t.Helper()
	rv := reflect.ValueOf(v).Elem()
	for i := 0; i < rv.NumField(); i++ {
		f := rv.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("garbage")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
			f.SetUint(0x5a)
		case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
			f.SetInt(0x5a)
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		case reflect.Map:
			f.Set(reflect.MakeMap(f.Type()))
		case reflect.Struct:
			if f.Type() != reflect.TypeOf(time.Time{}) {
				t.Fatalf("field %s: struct %s not handled", rv.Type().Field(i).Name, f.Type())
			}
			f.Set(reflect.ValueOf(time.Date(1999, 1, 2, 3, 4, 5, 6, time.FixedZone("garbage", 3600))))
		default:
			t.Fatalf("field %s: kind %s not handled", rv.Type().Field(i).Name, f.Kind())
		}
		if f.IsZero() {
			t.Fatalf("field %s still zero", rv.Type().Field(i).Name)
		}
	}
}

func TestCloneIntoWritesEveryField(t *testing.T) {
	plain := &Row{SKU: "apple", Region: "eu", Seq: 3, Minted: 10, Reserved: 4, Released: 1, Sold: 2, Shrunk: 1}
	sent := &Row{SKU: "pear", Region: "us", Seq: 9, Minted: 20, Reserved: 5, Released: 2, Sold: 1, Shrunk: 3,
		Sent: []Transfer{{To: "ap", Qty: 2}, {To: "eu", Qty: 1}}}
	for _, r := range []*Row{plain, sent} {
		var dst Row
		garbage(t, &dst)
		r.cloneInto(&dst)
		if !reflect.DeepEqual(dst, r.Clone()) {
			t.Fatalf("cloneInto wrote %+v, want %+v", dst, r.Clone())
		}
		if len(r.Sent) > 0 && &dst.Sent[0] == &r.Sent[0] {
			t.Fatal("cloneInto shares Sent")
		}
	}
}

func TestFillHoldWritesEveryField(t *testing.T) {
	lines := []Line{{SKU: "apple", Qty: 2}}
	plain := &Hold{ID: "eu-1", Lines: lines, State: Held, Created: t0, Expires: t0.Add(time.Minute),
		MaxExpires: t0.Add(time.Hour), Updated: t0}
	full := &Hold{ID: "eu-2-an-id-longer-than-twenty-four-bytes", Lines: lines, State: Confirmed, Created: t0,
		Expires: t0.Add(time.Minute), MaxExpires: t0.Add(time.Hour), Updated: t0.Add(time.Second),
		IdemKey: "k", Meta: "m", Cart: "c", Asked: []Line{{SKU: "apple", Qty: 3}}}
	for _, h := range []*Hold{plain, full} {
		var dst Hold
		garbage(t, &dst)
		newHoldRec(h).fillHold(&dst)
		if !reflect.DeepEqual(dst, *h) {
			t.Fatalf("fillHold over a used slot gave\n%+v\nwant\n%+v", dst, *h)
		}
	}
}

func TestSetHoldEventWritesEveryField(t *testing.T) {
	hc := &Hold{ID: "eu-1"}
	var e Event
	garbage(t, &e)
	e.setHold(EvHoldCreated, t0, hc)
	if want := (Event{Kind: EvHoldCreated, At: t0, HoldID: "eu-1", Hold: hc}); !reflect.DeepEqual(e, want) {
		t.Fatalf("setHold over a used slot gave\n%+v\nwant\n%+v", e, want)
	}
}

func TestPoisonMessagesWritesEveryField(t *testing.T) {
	s := make([]Message, 2)
	garbage(t, &s[0])
	poisonMessages(s)
	want := Message{Type: poisonKind, From: poisonedHold.ID, To: poisonedHold.ID, Seq: ^uint64(0)}
	for i, m := range s {
		if !reflect.DeepEqual(m, want) {
			t.Fatalf("message %d poisoned is\n%+v\nwant\n%+v", i, m, want)
		}
	}
}

func TestSetRowsMessageWritesEveryField(t *testing.T) {
	rows := []Row{{SKU: "apple", Region: "eu", Seq: 3}}
	var m Message
	garbage(t, &m)
	m.setRows("eu", 2, 3, rows)
	if want := (Message{Type: MsgRows, From: "eu", PrevSeq: 2, Seq: 3, Rows: rows}); !reflect.DeepEqual(m, want) {
		t.Fatalf("setRows over a used slot gave\n%+v\nwant\n%+v", m, want)
	}
}

func TestClearOutClearsEveryField(t *testing.T) {
	n := &Node{}
	garbage(t, &n.out.Persist)
	n.out.Send, n.out.Reply, n.out.Snapshots = make([]Message, 1), make([]Reply, 1), make([]SnapshotProgress, 1)
	if v := reflect.ValueOf(n.out); v.NumField() != 4 {
		t.Fatalf("Ready has %d fields; clearOut and this test know of 4", v.NumField())
	}
	n.clearOut()
	if !reflect.DeepEqual(n.out, Ready{}) {
		t.Fatalf("clearOut left %+v", n.out)
	}
}

func TestPoisonEventsWritesEveryField(t *testing.T) {
	s := make([]Event, 3)
	garbage(t, &s[0])
	s[1].setHold(EvHoldCreated, t0, &Hold{ID: "eu-1"})
	poisonEvents(s)
	want := Event{Kind: poisonKind, HoldID: poisonedHold.ID, Hold: &poisonedHold}
	for i, e := range s {
		if !reflect.DeepEqual(e, want) || e.Hold != &poisonedHold {
			t.Fatalf("event %d poisoned is\n%+v\nwant\n%+v", i, e, want)
		}
	}
}

func TestPoisonRepliesWritesEveryField(t *testing.T) {
	s := make([]Reply, 2)
	garbage(t, &s[0])
	poisonReplies(s)
	want := Reply{ReqID: ^uint64(0), Kind: poisonKind, Err: &poisonedErr, Hold: &poisonedHold}
	for i, r := range s {
		if !reflect.DeepEqual(r, want) || r.Err != &poisonedErr || r.Hold != &poisonedHold {
			t.Fatalf("reply %d poisoned is\n%+v\nwant\n%+v", i, r, want)
		}
	}
}

func TestSetReplyWritesEveryField(t *testing.T) {
	hc := &Hold{ID: "eu-1"}
	for _, r := range []Reply{{ReqID: 7, Kind: CmdHold, Hold: hc}, {}} {
		var d Reply
		garbage(t, &d)
		d.set(&r)
		if !reflect.DeepEqual(d, r) || d.Hold != r.Hold {
			t.Fatalf("set over a used slot gave\n%+v\nwant\n%+v", d, r)
		}
	}
}
