package configs_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestSuperclusterEventsStream: with the sample's JetStream and
// permissions, an operator creates the events stream; a region's relay
// publishes its own events to it (acked, duplicates dropped by id) and not
// another region's; an event reader consumes them.
func TestSuperclusterEventsStream(t *testing.T) {
	s := startSupercluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ops, err := jetstream.New(connect(t, s, "ops", nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ops.CreateStream(ctx, jetstream.StreamConfig{Name: "HOLDFAST_EVENTS", Subjects: []string{"holdfast.prod.events.>"},
		Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute}); err != nil {
		t.Fatalf("ops creates the stream: %v", err)
	}
	eu, err := jetstream.New(connect(t, s, "region-eu", nil, nats.CustomInboxPrefix("_INBOX.prod.eu")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eu.Stream(ctx, "HOLDFAST_EVENTS"); err != nil {
		t.Fatalf("region eu reads the stream's info: %v", err)
	}
	for i, dup := range []bool{false, true} {
		ack, err := eu.Publish(ctx, "holdfast.prod.events.eu.hold.created", []byte(`{}`), jetstream.WithMsgID("eu:1"))
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if ack.Duplicate != dup || ack.Sequence != 1 {
			t.Fatalf("publish %d: ack %+v, want duplicate=%v at sequence 1", i, ack, dup)
		}
	}
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if _, err := eu.Publish(short, "holdfast.prod.events.us.hold.created", []byte(`{}`), jetstream.WithMsgID("us:1")); err == nil {
		t.Fatal("region eu published an event of region us")
	}
	rd, err := jetstream.New(connect(t, s, "events", nil))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := rd.CreateOrUpdateConsumer(ctx, "HOLDFAST_EVENTS", jetstream.ConsumerConfig{Durable: "orders",
		AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		t.Fatalf("event reader creates a consumer: %v", err)
	}
	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range batch.Messages() {
		got = append(got, m.Headers().Get(jetstream.MsgIDHeader))
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 1 || got[0] != "eu:1" {
		t.Fatalf("reader got %v, want exactly [eu:1]", got)
	}
}
