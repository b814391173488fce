package httpapi

// GET /v1/events: the region's durable event log, as JSON pages with a
// cursor (long-polling with wait=) or as Server-Sent Events (Accept:
// text/event-stream; resume with Last-Event-ID). Only durable events are
// ever served (region.EventLog reads up to the head, which moves after the
// fsync of the batch holding them).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/eventlog"
	"github.com/holdfast-io/holdfast/region"
)

// Problem slugs of the event feed.
const (
	ProblemEventsGone     = "events-gone"     // 410: the cursor is older than retention
	ProblemEventsDisabled = "events-disabled" // 404: the region keeps no event log
)

func init() {
	problemTitles[ProblemEventsGone] = "Events no longer held"
	problemTitles[ProblemEventsDisabled] = "Event log disabled"
}

// sseHeartbeat is how often an idle event stream sends a comment line, so
// that proxies keep it open and a dead client is noticed.
var sseHeartbeat = 15 * time.Second

// eventsQuery is a checked GET /v1/events request.
type eventsQuery struct {
	after    uint64
	hasAfter bool
	limit    int
	wait     time.Duration
}

// parseEventsQuery checks after, limit and wait; the detail of the first
// problem is returned as an error.
func parseEventsQuery(req *http.Request, sse bool) (eventsQuery, error) {
	q := eventsQuery{limit: api.EventsDefaultLimit}
	vals := req.URL.Query()
	for k := range vals {
		switch k {
		case "after", "limit", "wait":
			if len(vals[k]) > 1 {
				return q, fmt.Errorf("query parameter %s given %d times", k, len(vals[k]))
			}
		default:
			return q, fmt.Errorf("unknown query parameter %q (after, limit, wait)", k)
		}
	}
	if v := vals.Get("after"); v != "" {
		n, err := parseSeq("after", v)
		if err != nil {
			return q, err
		}
		q.after, q.hasAfter = n, true
	}
	if id := req.Header.Get("Last-Event-ID"); sse && id != "" {
		n, err := parseSeq("Last-Event-ID", id)
		if err != nil {
			return q, err
		}
		q.after, q.hasAfter = n, true
	}
	if v := vals.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > api.EventsMaxLimit {
			return q, fmt.Errorf("limit %q must be a whole number from 1 to %d", v, api.EventsMaxLimit)
		}
		q.limit = n
	}
	if v := vals.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			if secs, serr := strconv.Atoi(v); serr == nil {
				d, err = time.Duration(secs)*time.Second, nil
			}
		}
		if err != nil || d < 0 || d > api.EventsMaxWaitSecs*time.Second {
			return q, fmt.Errorf("wait %q must be a duration (e.g. 30s) from 0 to %ds", v, api.EventsMaxWaitSecs)
		}
		q.wait = d
	}
	return q, nil
}

func parseSeq(name, v string) (uint64, error) {
	if strings.HasPrefix(v, "-") {
		return 0, fmt.Errorf("%s %q is negative: event sequences start at 1 (0: from the beginning)", name, v)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not an event sequence (a whole number, 0 for the beginning)", name, v)
	}
	return n, nil
}

func (s *Server) events(w http.ResponseWriter, req *http.Request) {
	sse := acceptsSSE(req)
	q, err := parseEventsQuery(req, sse)
	if err != nil {
		s.badRequest(exch(w, req), err.Error())
		return
	}
	l := s.rt.Events()
	if l == nil {
		s.problem(exch(w, req), http.StatusNotFound, ProblemEventsDisabled, "region "+s.name+" keeps no event log (events are disabled in its config)", nil)
		return
	}
	head := l.Head()
	if q.after > head {
		s.badRequest(exch(w, req), fmt.Sprintf("after %d is beyond the region's last event %d", q.after, head))
		return
	}
	oldest, err := l.Oldest()
	if err != nil {
		s.eventsError(w, req, err)
		return
	}
	if !q.hasAfter {
		q.after = oldest - 1 // everything still held
	} else if q.after+1 < oldest {
		s.eventsGone(w, req, q.after, oldest)
		return
	}
	if sse {
		s.streamEvents(w, req, l, q.after)
		return
	}
	s.pageEvents(w, req, l, q)
}

func acceptsSSE(req *http.Request) bool {
	for _, v := range req.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(mt), "text/event-stream") {
				return true
			}
		}
	}
	return false
}

func (s *Server) eventsGone(w http.ResponseWriter, req *http.Request, after, oldest uint64) {
	s.problem(exch(w, req), http.StatusGone, ProblemEventsGone,
		fmt.Sprintf("events after %d are no longer held (retention); the oldest held is %d: resume from after=%d and reconcile what was missed from the holds themselves",
			after, oldest, oldest-1),
		func(p *api.Problem) { p.OldestSeq = &oldest })
}

func (s *Server) eventsError(w http.ResponseWriter, req *http.Request, err error) {
	if errors.Is(err, region.ErrStoreClosed) {
		s.problem(exch(w, req), http.StatusServiceUnavailable, ProblemUnavailable, "the region is shutting down", nil)
		return
	}
	s.log.Error("reading the event log", "err", err)
	s.problem(exch(w, req), http.StatusServiceUnavailable, ProblemStorage, "reading the event log failed; retry shortly", nil)
}

// readAfter reads up to limit events after after; gone reports that the
// log no longer holds the one right after the cursor (pruned meanwhile).
func readAfter(l *region.EventLog, after uint64, limit int) (recs []eventlog.Record, gone bool, err error) {
	recs, err = l.Read(after, limit)
	if err != nil {
		return nil, false, err
	}
	if len(recs) > 0 && recs[0].Seq != after+1 {
		return nil, true, nil
	}
	return recs, false, nil
}

// pageEvents answers one JSON page, waiting up to q.wait for an event when
// there is none after the cursor.
func (s *Server) pageEvents(w http.ResponseWriter, req *http.Request, l *region.EventLog, q eventsQuery) {
	var deadline time.Time
	if q.wait > 0 {
		deadline = time.Now().Add(q.wait)
		_ = http.NewResponseController(w).SetWriteDeadline(deadline.Add(10 * time.Second))
	}
	var timer *time.Timer
	for {
		changed := l.Changed() // before reading: a commit after the read closes it
		recs, gone, err := readAfter(l, q.after, q.limit)
		if err != nil {
			s.eventsError(w, req, err)
			return
		}
		if gone {
			o, _ := l.Oldest()
			s.eventsGone(w, req, q.after, o)
			return
		}
		left := time.Until(deadline)
		if len(recs) > 0 || left <= 0 {
			s.writeEventsPage(w, recs, q.after, l.Head())
			return
		}
		if timer == nil {
			timer = time.NewTimer(left)
			defer timer.Stop()
		}
		select {
		case <-changed:
		case <-timer.C:
			deadline = time.Time{}
		case <-req.Context().Done():
			return
		case <-s.stopStreams:
			deadline = time.Time{}
		}
	}
}

func (s *Server) writeEventsPage(w http.ResponseWriter, recs []eventlog.Record, after, head uint64) {
	page := api.EventsPage{Events: make([]json.RawMessage, len(recs)), NextAfter: after, Head: head}
	for i := range recs {
		page.Events[i] = recs[i].Data
	}
	if len(recs) > 0 {
		page.NextAfter = recs[len(recs)-1].Seq
	}
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, http.StatusOK, &page)
}

// streamEvents sends every event after after as it becomes durable, until
// the client goes, the server stops, or the log drops events the client
// has not had (then the stream ends; its reconnect gets the 410).
func (s *Server) streamEvents(w http.ResponseWriter, req *http.Request, l *region.EventLog, after uint64) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the request timeout
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	beat := time.NewTicker(sseHeartbeat)
	defer beat.Stop()
	var buf bytes.Buffer
	for {
		changed := l.Changed()
		recs, gone, err := readAfter(l, after, api.EventsMaxLimit)
		if err != nil || gone {
			if err != nil && !errors.Is(err, region.ErrStoreClosed) {
				s.log.Warn("event stream ends", "err", err)
			}
			return
		}
		if len(recs) > 0 {
			buf.Reset()
			for i := range recs {
				writeSSE(&buf, &recs[i])
			}
			if _, err := w.Write(buf.Bytes()); err != nil || rc.Flush() != nil {
				return
			}
			after = recs[len(recs)-1].Seq
			continue
		}
		select {
		case <-changed:
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-req.Context().Done():
			return
		case <-s.stopStreams:
			return
		}
	}
}

// writeSSE writes one event: id (its sequence), event (its type) and its
// CloudEvent JSON as data lines.
func writeSSE(b *bytes.Buffer, rec *eventlog.Record) {
	b.WriteString("id: ")
	b.WriteString(strconv.FormatUint(rec.Seq, 10))
	b.WriteString("\nevent: ")
	b.WriteString(eventlog.TypePrefix)
	b.WriteString(rec.Kind.String())
	data := rec.Data
	for {
		line, rest, more := bytes.Cut(data, []byte("\n"))
		b.WriteString("\ndata: ")
		b.Write(line)
		if !more {
			break
		}
		data = rest
	}
	b.WriteString("\n\n")
}
