package eventlog

import (
	"testing"
)

func TestOutboxGapFreeAndDurableBound(t *testing.T) {
	db := memDB(t)
	o, err := OpenOutbox(db, "prod", "eu")
	if err != nil {
		t.Fatal(err)
	}
	if h := commit(t, db, o, stockEvents(1, 3)); h != 3 {
		t.Fatalf("head %d after 3 events", h)
	}
	// Staged but not committed: readers must not see it.
	b := db.NewBatch()
	staged, err := o.Append(b, stockEvents(4, 2))
	if err != nil || staged != 5 {
		t.Fatalf("staged %d, %v", staged, err)
	}
	if err := b.Commit(nil); err != nil {
		t.Fatal(err)
	}
	recs, err := o.Read(0, 100)
	if err != nil || len(recs) != 3 {
		t.Fatalf("read before Committed: %d records, %v", len(recs), err)
	}
	o.Committed(staged)
	select {
	case <-o.Notify():
	default:
		t.Fatal("Committed did not notify")
	}
	recs, err = o.Read(2, 100)
	if err != nil || len(recs) != 3 || recs[0].Seq != 3 || recs[2].Seq != 5 {
		t.Fatalf("read after 2: %+v, %v", recs, err)
	}
	if ce, err := Decode(recs[0].Data); err != nil || ce.Seq != 3 {
		t.Fatalf("record 3: %+v, %v", ce, err)
	}
	if recs, _ := o.Read(0, 2); len(recs) != 2 {
		t.Fatalf("limit 2: %d records", len(recs))
	}
	if recs, _ := o.Read(5, 10); len(recs) != 0 {
		t.Fatalf("read at head: %d records", len(recs))
	}

	if err := o.SaveCursor(4); err != nil {
		t.Fatal(err)
	}
	if err := o.Prune(3); err != nil {
		t.Fatal(err)
	}
	if old, err := o.Oldest(); err != nil || old != 3 {
		t.Fatalf("oldest after prune below 3: %d, %v", old, err)
	}
	// Reopen: head and cursor survive, numbering continues.
	o2, err := OpenOutbox(db, "prod", "eu")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := o2.Cursor(); err != nil || c != 4 || o2.Head() != 5 {
		t.Fatalf("reopened: head %d cursor %d (%v)", o2.Head(), c, err)
	}
	if h := commit(t, db, o2, stockEvents(6, 1)); h != 6 {
		t.Fatalf("head %d after reopen", h)
	}
	// An abandoned batch does not use up sequences.
	b2 := db.NewBatch()
	if _, err := o2.Append(b2, stockEvents(7, 4)); err != nil {
		t.Fatal(err)
	}
	_ = b2.Close()
	o2.Abandon()
	if h := commit(t, db, o2, stockEvents(7, 1)); h != 7 {
		t.Fatalf("head %d after an abandoned batch", h)
	}
}
