package region_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/internal/testutil/testapi"
	"github.com/holdfast-io/holdfast/region"
)

// The HTTP side of routed holds (routed_test.go has the runtime's): region
// eu knows that us has 5 units of A and that us is the home of A, so a
// hold of A that eu cannot cover is routed to us.

// forwards records the commands a fake transport was asked to forward.
type forwards struct {
	mu     sync.Mutex
	owners []string
	cmds   []escrow.Command
}

func (l *forwards) add(owner string, cmd escrow.Command) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.owners = append(l.owners, owner)
	l.cmds = append(l.cmds, cmd)
}

func (l *forwards) all() ([]string, []escrow.Command) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.owners...), append([]escrow.Command(nil), l.cmds...)
}

// TestRoutedHoldGoesToHome: over the HTTP API, a hold eu cannot cover is
// sent to the home with Routed set and the client's key, hash, lines, TTL
// and metadata, and the home's answer (its hold, or its refusal) is the
// client's. A retry with the same key goes to the same home.
func TestRoutedHoldGoesToHome(t *testing.T) {
	var log forwards
	homeAnswer := escrow.Reply{Kind: escrow.CmdHold, Hold: &escrow.Hold{ID: region.HomeHoldID, State: escrow.Held,
		Lines: []escrow.Line{{SKU: "A", Qty: 2}}, Created: time.Now(), Expires: time.Now().Add(time.Minute),
		MaxExpires: time.Now().Add(time.Hour), Updated: time.Now()}}
	var answerMu sync.Mutex
	ft := region.NewFakeTransport(func(owner string, cmd escrow.Command) (escrow.Reply, error) {
		log.add(owner, cmd)
		answerMu.Lock()
		defer answerMu.Unlock()
		return homeAnswer, nil
	})
	r := region.OpenHomed(t, ft)
	base := testapi.ServeAPI(t, r, region.Config{Name: "eu", Logger: quietLogger()})

	body := `{"items":[{"sku":"A","qty":2}],"ttl":"1m","metadata":{"cart":"c1"}}`
	res := call(t, base, "POST", "/v1/holds", jsonCT, body, map[string]string{"Idempotency-Key": "k1"})
	if res.Status != http.StatusCreated {
		t.Fatalf("routed hold: %d %s", res.Status, res.Body)
	}
	if h := res.Hold(t); h.ID != region.HomeHoldID {
		t.Fatalf("hold id %s, want the home's %s", h.ID, region.HomeHoldID)
	}
	owners, cmds := log.all()
	if len(cmds) != 1 || owners[0] != "us" {
		t.Fatalf("forwards: %v", owners)
	}
	c := cmds[0]
	if !c.Routed || c.Kind != escrow.CmdHold || c.IdemKey != "k1" || c.IdemHash == 0 || c.TTL != time.Minute ||
		c.Meta != `{"cart":"c1"}` || len(c.Lines) != 1 || c.Lines[0] != (escrow.Line{SKU: "A", Qty: 2}) {
		t.Fatalf("forwarded command %+v", c)
	}
	if got := region.RoutedOKCount(r); got != 1 {
		t.Fatalf("routed ok = %v", got)
	}
	if s := r.Stats(); s.Routed != 1 {
		t.Fatalf("node stats routed = %d", s.Routed)
	}

	// The client's retry goes to the same home, with the same key and hash.
	res = call(t, base, "POST", "/v1/holds", jsonCT, body, map[string]string{"Idempotency-Key": "k1"})
	if res.Status != http.StatusCreated || res.Hold(t).ID != region.HomeHoldID {
		t.Fatalf("retry: %d %s", res.Status, res.Body)
	}
	if _, cmds := log.all(); len(cmds) != 2 || cmds[1].IdemKey != "k1" || cmds[1].IdemHash != c.IdemHash {
		t.Fatalf("retry forwards: %+v", cmds)
	}

	// The home's refusal is the client's answer.
	answerMu.Lock()
	homeAnswer = escrow.Reply{Kind: escrow.CmdHold, Err: &escrow.Error{Code: escrow.CodeInsufficientStock,
		Detail: "not enough A at us", SKU: "A"}}
	answerMu.Unlock()
	res = call(t, base, "POST", "/v1/holds", jsonCT, `{"items":[{"sku":"A","qty":1}]}`, nil)
	if res.Status != http.StatusConflict || res.Problem(t).SKU != "A" {
		t.Fatalf("home's refusal: %d %s", res.Status, res.Body)
	}

	// A hold eu can cover is not routed, even of a homed SKU's cart: B is
	// local and not homed.
	region.Restock(t, r, "B", 1)
	if rep := region.MustDo(t, r, escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "B", Qty: 1}}}); rep.Err != nil ||
		!strings.HasPrefix(rep.Hold.ID, "eu-") {
		t.Fatalf("local hold: %+v %v", rep.Hold, rep.Err)
	}
	if _, cmds := log.all(); len(cmds) != 3 {
		t.Fatalf("%d forwards, want 3", len(cmds))
	}
}
