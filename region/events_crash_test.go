package region_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/eventlog"
	"github.com/holdfast-io/holdfast/region"
)

// feedConsumer follows a region's HTTP event feed across crashes and
// checks, as events arrive, that their sequences are 1, 2, 3 … with no gap
// and no duplicate.
type feedConsumer struct {
	mu     sync.Mutex
	events []eventlog.CloudEvent
	err    error
}

func (c *feedConsumer) last() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return uint64(len(c.events))
}

func (c *feedConsumer) add(data []byte) error {
	ce, err := eventlog.Decode(data)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if want := uint64(len(c.events)) + 1; ce.Seq != want || ce.ID != eventlog.EventID("eu", want) {
		return fmt.Errorf("event %s (seq %d) received, want seq %d: a gap or a duplicate", ce.ID, ce.Seq, want)
	}
	c.events = append(c.events, ce)
	return nil
}

// follow reads the SSE stream of base from the last event received
// (Last-Event-ID) until the stream breaks (the process was killed) or ctx
// ends.
func (c *feedConsumer) follow(ctx context.Context, base string) {
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", strconv.FormatUint(c.last(), 10))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		c.fail(fmt.Errorf("event stream: status %d, content type %q", res.StatusCode, res.Header.Get("Content-Type")))
		return
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	// An event counts only once the blank line that ends it arrives (SSE
	// dispatch rules): a process killed mid-write leaves a truncated last
	// line, which a scanner hands out at EOF like a whole one.
	var id, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "data: "):
			if data != "" {
				data += "\n"
			}
			data += line[6:]
		case line == "" && data != "":
			if err := c.add([]byte(data)); err != nil {
				c.fail(err)
				return
			}
			if id != strconv.FormatUint(c.last(), 10) {
				c.fail(fmt.Errorf("SSE id %q for event %d", id, c.last()))
				return
			}
			id, data = "", ""
		}
	}
}

// catchUp reads JSON pages from the last event received to the head.
func (c *feedConsumer) catchUp(t *testing.T, base string) {
	t.Helper()
	for {
		res, err := http.Get(fmt.Sprintf("%s/v1/events?after=%d&limit=1000", base, c.last()))
		if err != nil {
			t.Fatal(err)
		}
		var page api.EventsPage
		err = json.NewDecoder(res.Body).Decode(&page)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("page after %d: status %d: %v", c.last(), res.StatusCode, err)
		}
		for _, raw := range page.Events {
			if err := c.add(raw); err != nil {
				t.Fatal(err)
			}
		}
		if page.NextAfter != c.last() {
			t.Fatalf("next_after %d after event %d", page.NextAfter, c.last())
		}
		if c.last() == page.Head {
			return
		}
	}
}

func (c *feedConsumer) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

// TestEventsAcrossCrashes: kill -9 of a region in the middle of a burst of
// holds, confirms and releases, restart, again and again, while a consumer
// follows the HTTP feed (SSE, resuming with Last-Event-ID). The consumer
// ends with events 1..N, no gap, no duplicate, N the stored head; exactly
// one event per durable change (so one per acknowledged change: every
// acknowledged hold and transition is durable), and each hold's last event
// shows its final stored state. HOLDFAST_CRASH_SEED replays a schedule.
func TestEventsAcrossCrashes(t *testing.T) {
	cycles := 6
	if testing.Short() {
		cycles = 3
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("HOLDFAST_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (HOLDFAST_CRASH_SEED=%d to replay the schedule), %d cycles", seed, seed, cycles)
	rng := rand.New(rand.NewPCG(seed, 2))
	dir := t.TempDir()
	m := &crashModel{holds: map[string]*crashHold{}, minted: map[string]uint64{}}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	defer hc.CloseIdleConnections()
	cons := &feedConsumer{}
	restocks := 0
	for cycle := 0; cycle < cycles; cycle++ {
		p := startCrashChild(t, dir)
		c := &crashClient{base: p.base, hc: hc}
		if cycle == 0 {
			for _, sku := range crashSKUs {
				status, body, err := c.post(context.Background(), "/v1/skus/"+sku+"/restock", `{"qty":3000}`)
				if err != nil || status != 200 {
					t.Fatalf("restock: %d %s %v", status, body, err)
				}
				m.minted[sku] = 3000
				restocks++
			}
		}
		fctx, fcancel := context.WithCancel(context.Background())
		followed := make(chan struct{})
		go func() { defer close(followed); cons.follow(fctx, p.base) }()
		ctx, cancel := context.WithCancel(context.Background())
		errs := make(chan error, 16)
		var wg sync.WaitGroup
		for i := 0; i < 6; i++ {
			wg.Add(1)
			crng := rand.New(rand.NewPCG(rng.Uint64(), uint64(i)))
			go func() { defer wg.Done(); m.drive(ctx, c, crng, errs) }()
		}
		time.Sleep(time.Duration(50+rng.IntN(200)) * time.Millisecond) // the random moment of the crash
		p.kill()
		cancel()
		wg.Wait()
		<-followed // the stream broke with the process
		fcancel()
		select {
		case err := <-errs:
			t.Fatalf("cycle %d (seed %d): %v\nchild stderr:\n%s", cycle, seed, err, p.stderr.String())
		default:
		}
		if cons.err != nil {
			t.Fatalf("cycle %d (seed %d): consumer: %v", cycle, seed, cons.err)
		}
		m.verify(t, dir)
		t.Logf("cycle %d: %d events followed, %d holds acknowledged", cycle, cons.last(), len(m.holds))
	}
	// A last restart: the consumer catches up with JSON pages.
	p := startCrashChild(t, dir)
	cons.catchUp(t, p.base)
	p.kill()

	st, err := region.OpenStore(filepath.Join(dir, "data"), region.StoreOptions{Region: "eu", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	state, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if head := st.Events().Head(); head != cons.last() {
		t.Fatalf("consumer has %d events, the stored head is %d", cons.last(), head)
	}
	final := map[string]escrow.HoldState{}
	for _, h := range state.Holds {
		final[h.ID] = h.State
	}
	m.mu.Lock()
	for id := range m.holds {
		if _, ok := final[id]; !ok {
			t.Fatalf("acknowledged hold %s not stored", id)
		}
	}
	m.mu.Unlock()
	perHold := map[string][]escrow.EventKind{}
	lastState := map[string]string{}
	stockEvents := 0
	for i := range cons.events {
		ce := &cons.events[i]
		k := ce.Kind()
		if !k.IsHold() {
			if k != escrow.EvStockRestocked {
				t.Fatalf("unexpected %s", ce.Type)
			}
			stockEvents++
			continue
		}
		h, err := ce.Hold()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := final[h.ID]; !ok {
			t.Fatalf("event %s for hold %s, which is not stored: an event for a change that was not kept", ce.ID, h.ID)
		}
		perHold[h.ID] = append(perHold[h.ID], k)
		lastState[h.ID] = h.State
	}
	if stockEvents != restocks {
		t.Fatalf("%d restock events for %d acknowledged restocks", stockEvents, restocks)
	}
	terminal := map[escrow.HoldState]escrow.EventKind{escrow.Confirmed: escrow.EvHoldConfirmed, escrow.Released: escrow.EvHoldReleased}
	for id, st := range final {
		kinds := perHold[id]
		want := []escrow.EventKind{escrow.EvHoldCreated}
		if k, ok := terminal[st]; ok {
			want = append(want, k)
		}
		if fmt.Sprint(kinds) != fmt.Sprint(want) {
			t.Fatalf("hold %s (%v): events %v, want exactly %v", id, st, kinds, want)
		}
		if lastState[id] != st.String() {
			t.Fatalf("hold %s is %v, its last event says %s", id, st, lastState[id])
		}
	}
	t.Logf("%d cycles: %d events 1..%d, %d holds, each with exactly its changes", cycles, cons.last(), cons.last(), len(final))
}
