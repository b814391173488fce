package escrow

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestPartialHoldsNeverOverGrant races many partial holds (one Ready per
// batch of requests, so that they see the same stock) for a SKU that sells
// out: the granted units never exceed the stock, add up exactly to the
// row's Reserved, and each hold is granted at most what it asked.
func TestPartialHoldsNeverOverGrant(t *testing.T) {
	const seed, stock = 19, 37
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 0))
	tn := newTNode(t, Config{})
	tn.restock("A", stock)
	tn.restock("B", 5)
	var granted uint64
	refused := 0
	for batch := 0; batch < 20; batch++ {
		var reqs []uint64
		for i := 0; i < 5; i++ {
			tn.req++
			c := Command{Kind: CmdHold, ReqID: tn.req, Partial: true,
				Lines: []Line{{SKU: "A", Qty: 1 + rnd.Uint64N(6)}, {SKU: "Z", Qty: 1}}}
			reqs = append(reqs, c.ReqID)
			tn.step(&c)
		}
		tn.drain()
		for _, id := range reqs {
			r := tn.replies[id]
			if r.Err != nil {
				wantCode(t, "partial hold", r.Err, CodeInsufficientStock)
				refused++
				continue
			}
			h := r.Hold
			if !h.Partial() || len(h.Asked) != 2 || h.GrantedOf("Z") != 0 {
				t.Fatalf("hold %+v: want A granted, Z asked and granted 0", h)
			}
			g := h.GrantedOf("A")
			if g == 0 || g > h.Asked[0].Qty {
				t.Fatalf("hold %s granted %d of %d", h.ID, g, h.Asked[0].Qty)
			}
			granted += g
		}
	}
	if granted != stock {
		t.Fatalf("granted %d units in all, want exactly the stock %d", granted, stock)
	}
	if refused == 0 {
		t.Fatal("no hold was refused: the SKU never sold out, the test proves nothing")
	}
	if own := tn.n.View("A")[tn.n.Region()]; own.Reserved != granted {
		t.Fatalf("row reserved %d, holds granted %d", own.Reserved, granted)
	}
	checkOwnBooks(t, tn.n, "A")
	// Everything survives a restart, asked lines included.
	before := snap(tn.n)
	tn.restart()
	if after := snap(tn.n); !reflect.DeepEqual(before, after) {
		t.Fatalf("restart changed the state:\n%v\n%v", before, after)
	}
}

// TestPartialHoldAllGranted: a partial hold that gets everything still
// records what it asked (the API shows qty and granted).
func TestPartialHoldAllGranted(t *testing.T) {
	tn := newTNode(t, Config{})
	tn.restock("A", 5)
	r := tn.do(Command{Kind: CmdHold, Partial: true, Cart: "cart-1", Lines: []Line{l("A", 2)}})
	if r.Err != nil || !reflect.DeepEqual(r.Hold.Asked, []Line{l("A", 2)}) || r.Hold.GrantedOf("A") != 2 || r.Hold.Cart != "cart-1" {
		t.Fatalf("reply %+v %v", r.Hold, r.Err)
	}
	r = tn.do(Command{Kind: CmdHold, Cart: "bad cart", Lines: []Line{l("A", 1)}})
	wantCode(t, "cart with a space", r.Err, CodeInvalid)
}

func TestHoldExtensionWire(t *testing.T) {
	base := Hold{ID: newHoldID("eu", 1, 2), State: Held, Lines: []Line{l("A", 3)}}
	for _, h := range []Hold{
		base,
		func() Hold { h := base; h.Cart = "c1"; return h }(),
		func() Hold { h := base; h.Asked = []Line{l("A", 5), l("B", 2)}; return h }(),
		func() Hold { h := base; h.Cart = "c2"; h.Asked = []Line{l("A", 3)}; return h }(),
	} {
		b := EncodeHold(nil, &h)
		got, err := DecodeHold(b)
		if err != nil {
			t.Fatalf("%+v: %v", h, err)
		}
		if !reflect.DeepEqual(got, h) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, h)
		}
	}
	bad := base
	bad.Asked = []Line{l("A", 2)} // granted more than asked
	if _, err := DecodeHold(EncodeHold(nil, &bad)); err == nil {
		t.Fatal("a hold granted more than it asked decoded")
	}
	bad = base
	bad.Asked = []Line{l("B", 2)} // granted a line it did not ask
	if _, err := DecodeHold(EncodeHold(nil, &bad)); err == nil {
		t.Fatal("a hold granted a line it did not ask decoded")
	}
}
