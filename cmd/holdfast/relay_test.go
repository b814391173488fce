package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/eventlog"
	"github.com/holdfast-io/holdfast/gossip"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"github.com/holdfast-io/holdfast/region"
)

// TestRelayAcrossNATSOutage: a region with its relay keeps taking writes
// while the NATS server (JetStream, file store kept) is down for seconds;
// after it comes back the stream holds exactly one message per event id,
// in sequence order, and the relay's cursor reaches the head.
func TestRelayAcrossNATSOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("stops NATS for seconds")
	}
	store := t.TempDir()
	s := testutil.NATSWithOptions(t, &server.Options{JetStream: true, StoreDir: store})
	port := s.Addr().(*net.TCPAddr).Port
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := region.Config{Name: "eu", DataDir: t.TempDir(), Cluster: "prod", NATSURL: s.ClientURL(), Logger: quiet,
		FreshProbation: -1, // no peers here: the relay is what is under test
		Events:         region.EventsConfig{Relayed: true}}
	r, err := region.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rl, err := startRelay(cfg, r, gossip.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	do := func(c escrow.Command) {
		t.Helper()
		rep, err := r.Do(context.Background(), c)
		if err != nil || rep.Err != nil {
			t.Fatalf("%v: %v %v", c.Kind, err, rep.Err)
		}
	}
	load := func(n int) {
		for i := 0; i < n; i++ {
			do(escrow.Command{Kind: escrow.CmdRestock, SKU: "A", Qty: 1})
		}
	}
	cursorAt := func(seq uint64) {
		testutil.Eventually(t, 30*time.Second, fmt.Sprintf("relay cursor at %d", seq), func() bool {
			c, err := r.Events().Cursor()
			return err == nil && c >= seq
		})
	}
	load(20)
	cursorAt(20)
	s.Shutdown()
	s.WaitForShutdown()
	// Writes go on while NATS is away, for a few seconds.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		load(5)
	}
	s2 := testutil.NATSWithOptions(t, &server.Options{JetStream: true, StoreDir: store, Port: port})
	load(10)
	head := r.Events().Head()
	cursorAt(head)

	nc, err := nats.Connect(s2.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, eventlog.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != head {
		t.Fatalf("stream holds %d messages for %d events", info.State.Msgs, head)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		want := eventlog.EventID("eu", seq-info.State.FirstSeq+1)
		if id := m.Header.Get(jetstream.MsgIDHeader); id != want {
			t.Fatalf("stream message %d is %s, want %s (a gap, duplicate or reorder)", seq, id, want)
		}
	}
	if err := rl.Close(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("relay: %v", err)
	}
	t.Logf("%d events, each once and in order, across a NATS outage of 3s", head)
}
