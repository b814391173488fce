package region_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/eventlog"
	"github.com/holdfast-io/holdfast/httpapi"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"github.com/holdfast-io/holdfast/internal/testutil/testapi"
	"github.com/holdfast-io/holdfast/region"
)

// newEventsRegion opens region "eu" on a Pebble store in a temp dir (the
// event log lives in it) with its HTTP API.
func newEventsRegion(t *testing.T, mod func(c *region.Config)) (*region.Region, string) {
	t.Helper()
	cfg := region.Config{Name: "eu", DataDir: t.TempDir(), Logger: quietLogger(), Cluster: "prod"}
	if mod != nil {
		mod(&cfg)
	}
	return testapi.StartRegion(t, cfg)
}

func eventsPage(t *testing.T, base, query string) api.EventsPage {
	t.Helper()
	res := call(t, base, "GET", "/v1/events"+query, "", "", nil)
	if res.Status != 200 {
		t.Fatalf("GET /v1/events%s: %d %s", query, res.Status, res.Body)
	}
	var p api.EventsPage
	res.JSON(t, &p)
	return p
}

func TestEventsFeedPages(t *testing.T) { testapi.ForEachServer(t, testEventsFeedPages) }

func testEventsFeedPages(t *testing.T) {
	_, base := newEventsRegion(t, nil)
	// Empty log: an empty page at head 0.
	if p := eventsPage(t, base, ""); len(p.Events) != 0 || p.Head != 0 || p.NextAfter != 0 {
		t.Fatalf("empty log: %+v", p)
	}
	call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":10}`, nil)
	res := call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":2}]}`, nil)
	h := res.Hold(t)
	call(t, base, "POST", "/v1/holds/"+h.ID+"/confirm", "", "", nil)
	p := eventsPage(t, base, "?after=0&limit=2")
	if len(p.Events) != 2 || p.NextAfter != 2 || p.Head != 3 {
		t.Fatalf("first page: next_after %d head %d, %d events", p.NextAfter, p.Head, len(p.Events))
	}
	p = eventsPage(t, base, fmt.Sprintf("?after=%d", p.NextAfter))
	if len(p.Events) != 1 || p.NextAfter != 3 {
		t.Fatalf("second page: %+v", p)
	}
	ce, err := eventlog.Decode(p.Events[0])
	if err != nil || ce.ID != "eu:3" || ce.Type != "dev.holdfast.hold.confirmed" || ce.Subject != h.ID || ce.Source != "holdfast/prod/eu" {
		t.Fatalf("event 3: %+v %v", ce, err)
	}
	// At the head with wait: the long poll returns when the next event
	// commits, not at the end of its wait.
	done := make(chan api.EventsPage, 1)
	start := time.Now()
	go func() {
		res, err := http.Get(base + "/v1/events?after=3&wait=20s")
		if err != nil {
			return
		}
		defer res.Body.Close()
		var p api.EventsPage
		if res.StatusCode == 200 && json.NewDecoder(res.Body).Decode(&p) == nil {
			done <- p
		}
		close(done)
	}()
	// (Whether the poll arrives before or after the write-off, it answers
	// event 4; before, it must not wait for its deadline.)
	call(t, base, "POST", "/v1/skus/A/write-off", jsonCT, `{"qty":1}`, nil)
	select {
	case p, ok := <-done:
		if !ok || len(p.Events) != 1 || p.NextAfter != 4 {
			t.Fatalf("long poll: %+v", p)
		}
		if time.Since(start) > 15*time.Second {
			t.Fatal("the long poll waited for its deadline instead of the commit")
		}
	case <-time.After(25 * time.Second):
		t.Fatal("long poll never answered")
	}
	// A wait that ends without an event: an empty page.
	if p := eventsPage(t, base, "?after=4&wait=50ms"); len(p.Events) != 0 || p.NextAfter != 4 || p.Head != 4 {
		t.Fatalf("timed-out long poll: %+v", p)
	}
}

func TestEventsFeedBadInput(t *testing.T) { testapi.ForEachServer(t, testEventsFeedBadInput) }

func testEventsFeedBadInput(t *testing.T) {
	_, base := newEventsRegion(t, nil)
	call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":10}`, nil)
	for _, c := range []struct{ query, want string }{
		{"?after=-1", "negative"},
		{"?after=abc", "not an event sequence"},
		{"?after=1.5", "not an event sequence"},
		{"?after=2", "beyond the region's last event 1"},
		{"?after=18446744073709551616", "not an event sequence"},
		{"?limit=0", "from 1 to 1000"},
		{"?limit=1001", "from 1 to 1000"},
		{"?limit=99999999999999999999", "from 1 to 1000"},
		{"?limit=x", "from 1 to 1000"},
		{"?wait=61s", "from 0 to 60s"},
		{"?wait=-1s", "from 0 to 60s"},
		{"?wait=soon", "from 0 to 60s"},
		{"?after=0&after=1", "given 2 times"},
		{"?cursor=3", "unknown query parameter"},
	} {
		res := call(t, base, "GET", "/v1/events"+c.query, "", "", nil)
		if res.Status != 400 {
			t.Errorf("%s: status %d %s", c.query, res.Status, res.Body)
			continue
		}
		if p := res.Problem(t); p.Type != httpapi.ProblemTypeBase+"invalid" || !strings.Contains(p.Detail, c.want) {
			t.Errorf("%s: problem %+v, want detail with %q", c.query, p, c.want)
		}
	}
	res := call(t, base, "GET", "/v1/events", "", "", map[string]string{"Accept": "text/event-stream", "Last-Event-ID": "x1"})
	if res.Status != 400 || !strings.Contains(res.Problem(t).Detail, "Last-Event-ID") {
		t.Errorf("bad Last-Event-ID: %d %s", res.Status, res.Body)
	}
	// Nothing of it changed the log, and each was counted.
	if p := eventsPage(t, base, ""); p.Head != 1 {
		t.Fatalf("head %d after bad requests", p.Head)
	}
	res = call(t, base, "GET", "/metrics", "", "", nil)
	if !strings.Contains(string(res.Body), `holdfast_http_requests_total{code="400",route="GET /v1/events"} 15`) {
		t.Errorf("400s not counted:\n%s", grepLines(string(res.Body), "GET /v1/events"))
	}
}

func TestEventsFeedGoneAfterRetention(t *testing.T) {
	testapi.ForEachServer(t, testEventsFeedGoneAfterRetention)
}

func testEventsFeedGoneAfterRetention(t *testing.T) {
	r, base := newEventsRegion(t, func(c *region.Config) {
		c.Events = region.EventsConfig{Retention: time.Second, PruneInterval: 20 * time.Millisecond}
	})
	for i := 0; i < 5; i++ {
		call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":1}`, nil)
	}
	testutil.Eventually(t, 10*time.Second, "events pruned after their retention", func() bool {
		o, err := r.Events().Oldest()
		return err == nil && o == 6
	})
	call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":1}`, nil)
	res := call(t, base, "GET", "/v1/events?after=2", "", "", nil)
	if res.Status != http.StatusGone {
		t.Fatalf("pruned cursor: %d %s", res.Status, res.Body)
	}
	p := res.Problem(t)
	if p.Type != httpapi.ProblemTypeBase+httpapi.ProblemEventsGone || p.OldestSeq == nil || *p.OldestSeq != 6 {
		t.Fatalf("problem %+v", p)
	}
	// Resuming from oldest-1 works; without a cursor the page starts there.
	if pg := eventsPage(t, base, "?after=5"); len(pg.Events) != 1 || pg.NextAfter != 6 {
		t.Fatalf("after=5: %+v", pg)
	}
	if pg := eventsPage(t, base, ""); len(pg.Events) != 1 {
		t.Fatalf("no cursor: %+v", pg)
	}
	res = call(t, base, "GET", "/metrics", "", "", nil)
	for _, m := range []string{`holdfast_events_oldest_seq{region="eu"}`, `holdfast_events_head_seq{region="eu"} 6`, `holdfast_events_pruned_total{region="eu"} 5`} {
		if !strings.Contains(string(res.Body), m) {
			t.Errorf("metric %s missing:\n%s", m, grepLines(string(res.Body), "holdfast_events"))
		}
	}
}

func TestEventsFeedSSE(t *testing.T) { testapi.ForEachServer(t, testEventsFeedSSE) }

func testEventsFeedSSE(t *testing.T) {
	_, base := newEventsRegion(t, nil)
	call(t, base, "POST", "/v1/skus/A/restock", jsonCT, `{"qty":10}`, nil)
	call(t, base, "POST", "/v1/skus/B/restock", jsonCT, `{"qty":10}`, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", "1")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func() string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("stream ended")
			}
			return l
		case <-ctx.Done():
			t.Fatal("no line in time")
		}
		return ""
	}
	expectEvent := func(seq int, typ string) {
		t.Helper()
		var id, ev, data string
		for data == "" {
			l := next()
			switch {
			case strings.HasPrefix(l, "id: "):
				id = l[4:]
			case strings.HasPrefix(l, "event: "):
				ev = l[7:]
			case strings.HasPrefix(l, "data: "):
				data = l[6:]
			}
		}
		ce, err := eventlog.Decode([]byte(data))
		if err != nil || id != fmt.Sprint(seq) || ev != typ || ce.Seq != uint64(seq) {
			t.Fatalf("event: id %q event %q seq %d err %v, want %d %s", id, ev, ce.Seq, err, seq, typ)
		}
	}
	expectEvent(2, "dev.holdfast.stock.restocked") // resumed after Last-Event-ID 1
	call(t, base, "POST", "/v1/skus/A/write-off", jsonCT, `{"qty":1}`, nil)
	expectEvent(3, "dev.holdfast.stock.written_off") // streamed as it commits
	cancel()
}

func TestEventsFeedDisabled(t *testing.T) { testapi.ForEachServer(t, testEventsFeedDisabled) }

func testEventsFeedDisabled(t *testing.T) {
	_, base := newEventsRegion(t, func(c *region.Config) { c.Events.Disabled = true })
	res := call(t, base, "GET", "/v1/events", "", "", nil)
	if res.Status != 404 || res.Problem(t).Type != httpapi.ProblemTypeBase+httpapi.ProblemEventsDisabled {
		t.Fatalf("disabled: %d %s", res.Status, res.Body)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
