package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/holdfast-io/holdfast/eventlog"
)

func init() { commands = append(commands, newEventsCmd) }

func newEventsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Follow the durable hold and stock events of a cluster"}
	cmd.AddCommand(newEventsTailCmd())
	return cmd
}

type tailOpts struct {
	natsURL, cluster, region, stream string
	fromSeq                          uint64
	all, asJSON                      bool
}

func newEventsTailCmd() *cobra.Command {
	var o tailOpts
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print events from the JetStream stream as they arrive, one line each",
		Example: `  holdfast events tail --cluster local
  holdfast events tail --cluster local --region eu --from-seq 1 --json`,
		Long: `tail follows the JetStream stream the regions' relays publish to (subjects
holdfast.<cluster>.events.<region>.<type>) and prints one line per event: time,
id, type, subject and a summary. --json prints each raw CloudEvent instead.
By default it starts with the next event; --from-seq starts at a stream
sequence and --all at the stream's first message. docs/events.md describes the format.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd)
			defer stop()
			return tailEvents(ctx, cmd.OutOrStdout(), &o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.natsURL, "nats-url", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
	f.StringVar(&o.cluster, "cluster", "", "cluster name (subject namespace of the regions)")
	f.StringVar(&o.region, "region", "", "only this region's events (default: every region)")
	f.StringVar(&o.stream, "stream", eventlog.DefaultStream, "JetStream stream name")
	f.Uint64Var(&o.fromSeq, "from-seq", 0, "start at this stream sequence (default: new events only)")
	f.BoolVar(&o.all, "all", false, "start at the first message the stream holds")
	f.BoolVar(&o.asJSON, "json", false, "print each event as its raw CloudEvents JSON")
	_ = cmd.MarkFlagRequired("cluster")
	return cmd
}

func tailEvents(ctx context.Context, w io.Writer, o *tailOpts) error {
	nc, err := nats.Connect(o.natsURL, nats.Name("holdfast events tail"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("events tail: connect %s: %w", o.natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("events tail: %w", err)
	}
	region := o.region
	if region == "" {
		region = "*"
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{eventlog.SubjectPrefix(o.cluster) + region + ".>"},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	}
	switch {
	case o.fromSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, o.fromSeq
	case o.all:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	cons, err := js.OrderedConsumer(ctx, o.stream, cfg)
	if err != nil {
		return fmt.Errorf("events tail: stream %s: %w", o.stream, err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("events tail: %w", err)
	}
	go func() {
		<-ctx.Done()
		msgs.Stop()
	}()
	for {
		m, err := msgs.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("events tail: %w", err)
		}
		if o.asJSON {
			if _, err := fmt.Fprintf(w, "%s\n", m.Data()); err != nil {
				return err
			}
			continue
		}
		ce, err := eventlog.Decode(m.Data())
		if err != nil {
			fmt.Fprintf(w, "? %s: %v\n", m.Subject(), err)
			continue
		}
		if _, err := fmt.Fprintln(w, eventLine(&ce)); err != nil {
			return err
		}
	}
}

// eventLine is the one-line form of an event.
func eventLine(ce *eventlog.CloudEvent) string {
	kind := strings.TrimPrefix(ce.Type, eventlog.TypePrefix)
	head := fmt.Sprintf("%s %-10s %-18s %s", ce.Time.UTC().Format(time.RFC3339Nano), ce.ID, kind, ce.Subject)
	if ce.Kind().IsHold() {
		h, err := ce.Hold()
		if err != nil {
			return head + " (" + err.Error() + ")"
		}
		items := make([]string, len(h.Items))
		for i, it := range h.Items {
			items[i] = fmt.Sprintf("%s×%d", it.SKU, it.Qty)
		}
		return fmt.Sprintf("%s %s until %s [%s]", head, h.State, h.ExpiresAt.Format(time.RFC3339), strings.Join(items, " "))
	}
	s, err := ce.Stock()
	if err != nil {
		return head + " (" + err.Error() + ")"
	}
	return fmt.Sprintf("%s qty=%d available=%d", head, s.Qty, s.Available)
}
