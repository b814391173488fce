package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/holdfast-io/holdfast/api"
)

// ProblemEventsGone is the problem type slug of a cursor older than the
// region's retention (410; Error.OldestSeq is the oldest event held).
const ProblemEventsGone = "events-gone"

// Events reads one page of the region's durable event log: up to limit
// events (1..api.EventsMaxLimit; 0: the server's default) after seq after,
// each a CloudEvents 1.0 JSON object. It returns at once, with an empty
// page when no event is after the cursor.
func (c *Client) Events(ctx context.Context, after uint64, limit int) (*api.EventsPage, error) {
	return c.EventsWait(ctx, after, limit, 0)
}

// EventsWait is Events that, when no event is after the cursor, waits up
// to wait (at most api.EventsMaxWaitSecs, and less than the client's
// timeout) for the next one: a long poll.
func (c *Client) EventsWait(ctx context.Context, after uint64, limit int, wait time.Duration) (*api.EventsPage, error) {
	if limit < 0 || limit > api.EventsMaxLimit {
		return nil, fmt.Errorf("client: events limit %d outside 0..%d", limit, api.EventsMaxLimit)
	}
	path := fmt.Sprintf("/v1/events?after=%d", after)
	if limit > 0 {
		path += fmt.Sprintf("&limit=%d", limit)
	}
	if wait > 0 {
		path += "&wait=" + wait.String()
	}
	var p api.EventsPage
	if _, err := c.Do(ctx, http.MethodGet, path, nil, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// EventsHead returns the sequence of the region's last durable event: the
// cursor to follow from now on.
func (c *Client) EventsHead(ctx context.Context) (uint64, error) {
	p, err := c.Events(ctx, 0, 1)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.OldestSeq != nil && *e.OldestSeq > 0 {
			p, err = c.Events(ctx, *e.OldestSeq-1, 1)
		}
		if err != nil {
			return 0, err
		}
	}
	return p.Head, nil
}

// FollowEvents calls fn with every event after seq after, in order, as the
// region makes them durable (long-polling), until ctx ends (nil), fn fails
// (its error) or the cursor falls behind retention (an *Error with code
// ProblemEventsGone). A transient failure (network, 503) is retried after
// a pause, from the last event fn accepted, so fn sees each event once.
func (c *Client) FollowEvents(ctx context.Context, after uint64, fn func(seq uint64, event json.RawMessage) error) error {
	wait := min(25*time.Second, c.timeout-2*time.Second)
	if wait < time.Second {
		wait = 0 // a client timeout too short to long-poll: poll
	}
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		p, err := c.EventsWait(ctx, after, api.EventsMaxLimit, wait)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if st := StatusOf(err); st >= 400 && st < 500 {
				return err // 410 gone, 400, 401, 403, 404: retrying will not help
			}
			if !sleepCtx(ctx, pause) {
				return nil
			}
			pause = min(2*pause, 5*time.Second)
			continue
		}
		pause = 100 * time.Millisecond
		for _, raw := range p.Events {
			var id struct {
				Seq uint64 `json:"seq"`
			}
			if err := json.Unmarshal(raw, &id); err != nil || id.Seq != after+1 {
				return fmt.Errorf("client: event feed gave seq %d after %d (%v)", id.Seq, after, err)
			}
			if err := fn(id.Seq, raw); err != nil {
				return err
			}
			after = id.Seq
		}
		if wait == 0 && len(p.Events) == 0 && !sleepCtx(ctx, time.Second) {
			return nil
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
