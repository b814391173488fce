package escrow

import (
	"testing"
	"time"
)

// cluster delivers every message between nodes at once, for quick tests.
type cluster struct {
	t     *testing.T
	nodes map[string]*Node
	now   time.Time
	reply map[string][]Reply
}

func newCluster(t *testing.T, regions ...string) *cluster {
	c := &cluster{t: t, nodes: map[string]*Node{}, now: time.Unix(1_700_000_000, 0).UTC(), reply: map[string][]Reply{}}
	for _, r := range regions {
		n, err := NewNode(Config{Region: r, DigestInterval: -1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.nodes[r] = n
	}
	return c
}

func (c *cluster) step(region string, in Input) {
	in.Now = c.now
	if err := c.nodes[region].Step(in); err != nil {
		c.t.Fatalf("%s: %v", region, err)
	}
	c.drain()
}

func (c *cluster) drain() {
	for progress := true; progress; {
		progress = false
		for r, n := range c.nodes {
			if !n.HasReady() {
				continue
			}
			progress = true
			rd := n.Ready()
			c.reply[r] = append(c.reply[r], rd.Reply...)
			for i := range rd.Send {
				m := rd.Send[i]
				b, err := EncodeMessage(nil, &m)
				if err != nil {
					c.t.Fatal(err)
				}
				dm, err := DecodeMessage(b)
				if err != nil {
					c.t.Fatal(err)
				}
				for to, dst := range c.nodes {
					if to == r || (m.To != "" && m.To != to) {
						continue
					}
					mm := dm
					if err := dst.Step(Input{Now: c.now, Msg: &mm}); err != nil {
						c.t.Fatalf("%s <- %s: %v", to, r, err)
					}
				}
			}
			n.Advance()
		}
	}
}

func (c *cluster) last(region string) Reply {
	rs := c.reply[region]
	if len(rs) == 0 {
		c.t.Fatalf("%s: no reply", region)
	}
	return rs[len(rs)-1]
}

func TestSmokeBorrowLastUnit(t *testing.T) {
	c := newCluster(t, "eu", "us", "ap")
	c.step("eu", Input{Cmd: &Command{Kind: CmdRestock, ReqID: 1, SKU: "A", Qty: 1}})
	if r := c.last("eu"); r.Err != nil || r.Applied != 1 {
		t.Fatalf("restock: %+v", r)
	}
	c.step("us", Input{Cmd: &Command{Kind: CmdHold, ReqID: 2, Lines: []Line{{SKU: "A", Qty: 1}}}})
	r := c.last("us")
	if r.Err != nil || r.Hold == nil || r.Hold.State != Held {
		t.Fatalf("hold at us: %+v err=%v", r, r.Err)
	}
	c.step("ap", Input{Cmd: &Command{Kind: CmdHold, ReqID: 3, Lines: []Line{{SKU: "A", Qty: 1}}}})
	if r := c.last("ap"); r.Err == nil || r.Err.Code != CodeInsufficientStock {
		t.Fatalf("second hold: %+v", r)
	}
	for _, n := range c.nodes {
		if err := n.View("A").CheckConservation(); err != nil {
			t.Fatal(err)
		}
	}
	// Expire: the unit returns to us.
	c.now = c.now.Add(11 * time.Minute)
	c.step("us", Input{})
	if got := c.nodes["us"].Available("A"); got != 1 {
		t.Fatalf("after expiry us available = %d", got)
	}
}
