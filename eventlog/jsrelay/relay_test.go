package jsrelay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/eventlog"
	"github.com/holdfast-io/holdfast/internal/testutil"
)

// jsServer starts a nats-server with JetStream in dir on port (-1: free).
func jsServer(t *testing.T, dir string, port int) *server.Server {
	t.Helper()
	return testutil.NATSWithOptions(t, &server.Options{JetStream: true, StoreDir: dir, Port: port, Host: "127.0.0.1"})
}

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// nosave is a cursor store that loses every save: a relay that crashes
// right after each publish.
type nosave struct{}

func (nosave) Cursor() (uint64, error) { return 0, nil }
func (nosave) SaveCursor(uint64) error { return nil }

// relayWindow is the Window of the relays startRelay runs (0: the
// default, one publish at a time); TestRelayPipelined sets it.
var relayWindow int

// startRelay runs a relay until the test ends or stop is called.
func startRelay(t *testing.T, nc *nats.Conn, src eventlog.Source, cur eventlog.CursorStore) (stop func()) {
	t.Helper()
	r, err := NewRelay(RelayConfig{Cluster: "prod", Region: "eu", Conn: nc, Source: src, Cursor: cur,
		AckTimeout: 500 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Window: relayWindow, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("relay: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// streamIDs returns the Nats-Msg-Id of every message of the stream, in
// stream order.
func streamIDs(t *testing.T, nc *nats.Conn) []string {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, eventlog.DefaultStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		ce, err := eventlog.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		id := m.Header.Get(jetstream.MsgIDHeader)
		if id != ce.ID || m.Subject != eventlog.Subject("prod", "eu", ce.Kind()) {
			t.Fatalf("stream seq %d: id %q subject %q carries event %s", seq, id, m.Subject, ce.ID)
		}
		ids = append(ids, id)
	}
	return ids
}

// wantIDs checks the stream holds eu:1..eu:n once each, in order.
func wantIDs(t *testing.T, nc *nats.Conn, n int) {
	t.Helper()
	ids := streamIDs(t, nc)
	if len(ids) != n {
		t.Fatalf("stream holds %d messages, want %d", len(ids), n)
	}
	for i, id := range ids {
		if id != eventlog.EventID("eu", uint64(i+1)) {
			t.Fatalf("stream message %d is %s, want %s", i+1, id, eventlog.EventID("eu", uint64(i+1)))
		}
	}
}

func cursorAt(t *testing.T, o *eventlog.Outbox, seq uint64) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, fmt.Sprintf("relay cursor at %d", seq), func() bool {
		c, err := o.Cursor()
		return err == nil && c >= seq
	})
}

// (a) every event once, in order, including events committed while the
// relay runs.
func TestRelayPublishesInOrder(t *testing.T) {
	s := jsServer(t, t.TempDir(), -1)
	nc := connect(t, s.ClientURL())
	db := memDB(t)
	o, err := eventlog.OpenOutbox(db, "prod", "eu")
	if err != nil {
		t.Fatal(err)
	}
	evs := stockEvents(1, 8)
	commit(t, db, o, evs)
	startRelay(t, nc, o, o)
	n := len(evs)
	for i := 0; i < 5; i++ {
		n = int(commit(t, db, o, stockEvents(n+1, 7)))
	}
	cursorAt(t, o, uint64(n))
	wantIDs(t, nc, n)
}

// (b) a relay that crashes after publishing but before saving its cursor
// re-sends everything on restart; the duplicate window drops the re-sends.
func TestRelayCrashBeforeCursorResends(t *testing.T) {
	s := jsServer(t, t.TempDir(), -1)
	nc := connect(t, s.ClientURL())
	db := memDB(t)
	o, err := eventlog.OpenOutbox(db, "prod", "eu")
	if err != nil {
		t.Fatal(err)
	}
	commit(t, db, o, stockEvents(1, 40))
	stop := startRelay(t, nc, o, nosave{})
	testutil.Eventually(t, 20*time.Second, "40 messages in the stream", func() bool { return len(streamIDs(t, nc)) == 40 })
	stop()
	commit(t, db, o, stockEvents(41, 10))
	startRelay(t, nc, o, o) // cursor 0: re-sends 1..40
	cursorAt(t, o, 50)
	wantIDs(t, nc, 50)
}

// (c) the NATS server stops for a while under load and restarts with its
// store: the stream ends with each event once, in order.
func TestRelaySurvivesNATSRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("stops NATS for seconds")
	}
	dir := t.TempDir()
	s := jsServer(t, dir, -1)
	port := s.Addr().(*net.TCPAddr).Port
	nc := connect(t, s.ClientURL())
	db := memDB(t)
	o, err := eventlog.OpenOutbox(db, "prod", "eu")
	if err != nil {
		t.Fatal(err)
	}
	startRelay(t, nc, o, o)
	n := int(commit(t, db, o, stockEvents(1, 20)))
	cursorAt(t, o, 5) // the stream exists and takes events
	s.Shutdown()
	s.WaitForShutdown()
	// Events keep committing while NATS is away.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		n = int(commit(t, db, o, stockEvents(n+1, 3)))
		time.Sleep(20 * time.Millisecond) // pacing the load, not waiting for anything
	}
	s2 := jsServer(t, dir, port)
	n = int(commit(t, db, o, stockEvents(n+1, 10)))
	cursorAt(t, o, uint64(n))
	wantIDs(t, nc, n)
	_ = s2
}

func memDB(t testing.TB) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// stockEvents makes n restock events, for tests that need many.
func stockEvents(from, n int) []escrow.Event {
	evs := make([]escrow.Event, n)
	for i := range evs {
		q := uint64(from + i)
		evs[i] = escrow.Event{Kind: escrow.EvStockRestocked, At: time.Now(), SKU: "apple", Qty: q, Available: q}
	}
	return evs
}

// commit appends evs to o in one synced batch, as the region runtime does.
func commit(t testing.TB, db *pebble.DB, o *eventlog.Outbox, evs []escrow.Event) uint64 {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	head, err := o.Append(b, evs)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	o.Committed(head)
	return head
}

// TestRelayPipelined runs the relay tests again with a window of 512
// publishes in flight: every event once, in order, across a crash before
// the cursor save and a NATS restart.
func TestRelayPipelined(t *testing.T) {
	relayWindow = 512
	t.Cleanup(func() { relayWindow = 0 })
	t.Run("InOrder", TestRelayPublishesInOrder)
	t.Run("CrashBeforeCursor", TestRelayCrashBeforeCursorResends)
	t.Run("NATSRestart", TestRelaySurvivesNATSRestart)
}
