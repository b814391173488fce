package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/holdfast-io/holdfast/client"
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
	url, token                       string // --url: follow this region's HTTP feed instead
	after                            int64  // --url: cursor (-1: from now)
}

func newEventsTailCmd() *cobra.Command {
	var o tailOpts
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print events from the JetStream stream or a region's HTTP feed as they arrive, one line each",
		Example: `  holdfast events tail --cluster local
  holdfast events tail --cluster local --region eu --from-seq 1 --json
  holdfast events tail --url http://127.0.0.1:8080 --after 0`,
		Long: `tail follows the JetStream stream the regions' relays publish to (subjects
holdfast.<cluster>.events.<region>.<type>) and prints one line per event: time,
id, type, subject and a summary. --json prints each raw CloudEvent instead.
By default it starts with the next event; --from-seq starts at a stream
sequence and --all at the stream's first message. docs/events.md describes the format.

With --url it follows one region's HTTP feed (GET /v1/events, long-polling)
instead of JetStream: from now, or after the event sequence --after (0: from
the oldest event the region still holds). A cursor older than the region's
retention ends with the 410 problem naming the oldest sequence held.
--token (env HOLDFAST_TOKEN) needs scope client or admin.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd)
			defer stop()
			if o.url != "" {
				if !cmd.Flags().Changed("token") {
					o.token = os.Getenv(envToken)
				}
				return tailFeed(ctx, cmd.OutOrStdout(), &o)
			}
			if o.cluster == "" {
				return errors.New("events tail: --cluster is required (or --url to follow a region's HTTP feed)")
			}
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
	f.StringVar(&o.url, "url", "", "follow this region's HTTP feed (e.g. http://127.0.0.1:8080) instead of JetStream")
	f.StringVar(&o.token, "token", "", "bearer token for --url (env "+envToken+")")
	f.Int64Var(&o.after, "after", -1, "with --url: start after this event sequence (0: the oldest held; default: new events only)")
	return cmd
}

// tailFeed follows a region's HTTP event feed.
func tailFeed(ctx context.Context, w io.Writer, o *tailOpts) error {
	c, err := client.New(o.url, client.Options{Token: o.token, Timeout: time.Minute, UserAgent: "holdfast-cli/" + version})
	if err != nil {
		return err
	}
	after := uint64(0)
	switch {
	case o.after >= 0:
		after = uint64(o.after)
	default:
		if after, err = c.EventsHead(ctx); err != nil {
			return fmt.Errorf("events tail: %w", err)
		}
	}
	err = c.FollowEvents(ctx, after, func(_ uint64, raw json.RawMessage) error {
		if o.asJSON {
			_, err := fmt.Fprintf(w, "%s\n", raw)
			return err
		}
		ce, err := eventlog.Decode(raw)
		if err != nil {
			_, err = fmt.Fprintf(w, "? %v\n", err)
			return err
		}
		_, err = fmt.Fprintln(w, eventLine(&ce))
		return err
	})
	if err != nil {
		return fmt.Errorf("events tail: %w", err)
	}
	return nil
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
