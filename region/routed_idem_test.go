package region

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
)

// fakeHome stands for region us, the home of a scarce SKU: it grants each
// routed hold once per idempotency key and replays it on a retry, as a
// real home does. lose makes it drop the answer of the next grant (the
// gateway sees a timeout).
type fakeHome struct {
	mu     sync.Mutex
	byKey  map[string]string // idempotency key → hold id granted
	grants int
	calls  int
	lose   bool
}

func (h *fakeHome) forward(owner string, cmd escrow.Command) (escrow.Reply, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	if owner != "us" || cmd.Kind != escrow.CmdHold || !cmd.Routed || cmd.IdemKey == "" {
		return escrow.Reply{Kind: cmd.Kind, Err: &escrow.Error{Code: escrow.CodeInvalid, Detail: "fake home: unexpected forward"}}, nil
	}
	id, replayed := h.byKey[cmd.IdemKey]
	if !replayed {
		h.grants++
		id = fmt.Sprintf("us-01234567890000000%d", h.grants)
		h.byKey[cmd.IdemKey] = id
	}
	if h.lose {
		h.lose = false
		return escrow.Reply{}, fmt.Errorf("%w: us: %v", ErrUnreachable, context.DeadlineExceeded)
	}
	return escrow.Reply{Kind: escrow.CmdHold, Replayed: replayed,
		Hold: &escrow.Hold{ID: id, Lines: cmd.Lines, State: escrow.Held}}, nil
}

// TestRoutedIdempotencyGatewayKilled: eu routes a hold of A (homed at us)
// to us; us grants it but its answer is lost, so the shopper gets 503 and
// will retry. eu is then killed (the filesystem keeps only what was
// synced) and restarts with no advice in memory, and with units of A of
// its own. The retry with the same idempotency key must not become a
// second hold: the routing decision was durable before the hold was
// forwarded, so eu sends the retry to us, which replays its hold.
func TestRoutedIdempotencyGatewayKilled(t *testing.T) {
	mem := vfs.NewCrashableMem()
	home := &fakeHome{byKey: map[string]string{}, lose: true}
	open := func(fs vfs.FS) *Region {
		r, err := Open(context.Background(), Config{Name: "eu", DataDir: "data", FS: fs, Logger: quietLogger(),
			TickInterval: 5 * time.Millisecond,
			Escrow:       escrow.Config{HomeTTL: time.Minute, PeerSilence: time.Minute, BorrowTimeout: 100 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		r.AttachTransport(&fakeTransport{forward: home.forward})
		return r
	}
	r := open(mem)
	r.Deliver(escrow.Message{Type: escrow.MsgRows, From: "us", PrevSeq: 0, Seq: 1,
		Rows: []escrow.Row{{SKU: "A", Region: "us", Seq: 1, Minted: 5}}})
	r.Deliver(escrow.Message{Type: escrow.MsgAdvice, From: "rebalancer", Epoch: 1,
		Homes: []escrow.Home{{SKU: "A", Region: "us"}}})
	waitFor(t, 5*time.Second, "the home of A in force at eu", func() bool {
		n := 0
		if err := r.Inspect(context.Background(), func(nd *escrow.Node) { n = nd.HomesInForce() }); err != nil {
			t.Fatal(err)
		}
		return n == 1
	})

	cmd := escrow.Command{Kind: escrow.CmdHold, Lines: []escrow.Line{{SKU: "A", Qty: 1}}, IdemKey: "cart-7", IdemHash: 42}
	if _, err := r.Do(context.Background(), cmd); !errors.Is(err, ErrOwnerUnreachable) {
		t.Fatalf("first attempt: err = %v, want ErrOwnerUnreachable (the home's answer was lost)", err)
	}
	// kill -9: only what eu synced survives; the running region is then
	// abandoned (closed, but nothing it writes reaches the clone).
	crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	r.Close()

	r2 := open(crashed)
	defer r2.Close()
	restock(t, r2, "A", 5) // eu could now grant the retry itself
	var homes int
	r2.Inspect(context.Background(), func(n *escrow.Node) { homes = n.HomesInForce() })
	if homes != 0 {
		t.Fatalf("%d homes in force after the restart: the test shows nothing", homes)
	}
	rep := mustDo(t, r2, cmd)
	if rep.Err != nil || rep.Hold == nil {
		t.Fatalf("retry after the restart: %+v", rep)
	}
	home.mu.Lock()
	grants, first := home.grants, home.byKey["cart-7"]
	home.mu.Unlock()
	if strings.HasPrefix(rep.Hold.ID, "eu-") {
		t.Fatalf("the retry became a second hold %s at eu (us holds %s)", rep.Hold.ID, first)
	}
	if rep.Hold.ID != first || !rep.Replayed || grants != 1 {
		t.Fatalf("retry: hold %s replayed=%v, us granted %d (first %s); want the first hold replayed",
			rep.Hold.ID, rep.Replayed, grants, first)
	}
	var held uint64
	r2.Inspect(context.Background(), func(n *escrow.Node) { held = n.View("A")["eu"].Held() })
	if held != 0 {
		t.Fatalf("eu holds %d units of A: one hold in all wanted", held)
	}
	// Another body under the key is refused here, after the restart too.
	cmd.IdemHash = 43
	if rep := mustDo(t, r2, cmd); rep.Err == nil || rep.Err.Code != escrow.CodeIdempotencyReuse {
		t.Fatalf("another body under the routed key: %+v", rep)
	}
}

// TestRoutedIdempotencyStoreEncoding: both forms of an idempotency entry
// round-trip through the store encoding, and malformed ones are refused.
func TestRoutedIdempotencyStoreEncoding(t *testing.T) {
	exp := time.Unix(1_700_000_000, 123).UTC()
	for _, e := range []escrow.IdemEntry{
		{Key: "k", HoldID: "eu-0123456789abcdefgh", Hash: 7, Expires: exp},
		{Key: "k", RoutedTo: "us", Hash: 8, Expires: exp},
	} {
		v := appendIdemValue(nil, &e)
		got, err := decodeIdemValue("k", v)
		if err != nil || got != e {
			t.Fatalf("round trip of %+v: %+v %v", e, got, err)
		}
		for cut := 0; cut < len(v); cut++ {
			if _, err := decodeIdemValue("k", v[:cut]); err == nil {
				t.Fatalf("%+v cut to %d bytes decoded", e, cut)
			}
		}
		if _, err := decodeIdemValue("k", append(v, 0)); err == nil {
			t.Fatalf("%+v with a trailing byte decoded", e)
		}
	}
	// A routed entry must name a region and no hold; a hold entry a hold.
	for _, bad := range []escrow.IdemEntry{
		{Key: "k", HoldID: "eu-0123456789abcdefgh", RoutedTo: "us", Expires: exp},
		{Key: "k", Expires: exp},
	} {
		if _, err := decodeIdemValue("k", appendIdemValue(nil, &bad)); err == nil {
			t.Fatalf("%+v decoded", bad)
		}
	}
}
