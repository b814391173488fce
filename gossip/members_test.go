package gossip

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"github.com/holdfast-io/holdfast/region"
)

// TestForwardMembership: in an unsigned cluster whose membership is eu and
// us, a forwarded command from zz (a plain NATS client) is refused without
// running and counted; messages from zz are dropped (non_member); and eu
// never forwards a command to zz, whoever answers on its subject.
func TestForwardMembership(t *testing.T) {
	_, url := testutil.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inbox := &countingInbox{}
	eu, err := Connect(ctx, Config{URL: url, Cluster: "m", Region: "eu", Members: []string{"eu", "us"}, Logger: quietLog()}, inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer eu.Close()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	release := escrow.Command{Kind: escrow.CmdRelease, HoldID: "eu-0000000000000001"}
	msg, err := nc.RequestWithContext(ctx, HoldSubject("m", "eu"), mustEncodeForward(t, "zz", release))
	if err != nil {
		t.Fatal(err)
	}
	fr, err := DecodeForwardReply(msg.Data)
	if err != nil || !fr.Refused || !strings.Contains(fr.Failure, "not a member") {
		t.Fatalf("reply to a non-member: %+v, %v", fr, err)
	}
	// A member's command runs (the membership is not a closed door).
	msg, err = nc.RequestWithContext(ctx, HoldSubject("m", "eu"), mustEncodeForward(t, "us", release))
	if err != nil {
		t.Fatal(err)
	}
	if fr, err := DecodeForwardReply(msg.Data); err != nil || fr.Failure != "" {
		t.Fatalf("reply to a member: %+v, %v", fr, err)
	}
	if n := inbox.executed(); n != 1 {
		t.Fatalf("executed %d commands, want 1 (the member's)", n)
	}
	if v := counterValue(eu.m.forwardsServed.WithLabelValues("non_member")); v != 1 {
		t.Fatalf("forwards_served{result=non_member} = %v, want 1", v)
	}

	// zz's digest is dropped before the node sees it.
	if eu.handle("holdfast.m.digest.zz", encode(t, escrow.Message{Type: escrow.MsgDigest, From: "zz", Seq: 1}), time.Now()) {
		t.Fatal("digest of a non-member delivered")
	}
	if v := counterValue(eu.m.rejected.WithLabelValues("non_member")); v != 2 {
		t.Fatalf("rejected{reason=non_member} = %v, want 2 (forward, digest)", v)
	}

	// An impostor answering on zz's subject is never asked.
	asked := make(chan struct{}, 1)
	if _, err := nc.Subscribe(HoldSubject("m", "zz"), func(m *nats.Msg) {
		asked <- struct{}{}
		data, _ := EncodeForwardReply(nil, &ForwardReply{Reply: escrow.Reply{Kind: escrow.CmdRelease}})
		_ = m.Respond(data)
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	_, err = eu.Forward(ctx, "zz", escrow.Command{Kind: escrow.CmdRelease, HoldID: "zz-0000000000000001"})
	if !errors.Is(err, region.ErrRefused) || !strings.Contains(err.Error(), "not a member") {
		t.Fatalf("forward to a non-member: %v", err)
	}
	select {
	case <-asked:
		t.Fatal("a command was sent to a non-member")
	default:
	}
	if v := counterValue(eu.m.rejected.WithLabelValues("non_member")); v != 3 {
		t.Fatalf("rejected{reason=non_member} = %v, want 3", v)
	}
}

// TestConfigForMembership: ConfigFor passes the region's membership, or
// the deprecated escrow.peers alias with the region itself, to the
// transport; the transport's membership falls back to MemberKeys.
func TestConfigForMembership(t *testing.T) {
	c := ConfigFor(region.Config{Name: "eu", Members: []region.Member{{Name: "eu"}, {Name: "us"}}})
	if !reflect.DeepEqual(c.Members, []string{"eu", "us"}) {
		t.Fatalf("members %v", c.Members)
	}
	c = ConfigFor(region.Config{Name: "eu", Escrow: escrow.Config{Peers: []string{"us", "ap"}}})
	if !reflect.DeepEqual(c.Members, []string{"eu", "us", "ap"}) {
		t.Fatalf("members from escrow.peers %v", c.Members)
	}
	c = ConfigFor(region.Config{Name: "eu", PeerLimits: region.PeerLimits{RepairRate: 9, RepairBurst: 8,
		RepairAnswerBytesPerSec: 7, RepairAnswerBurstBytes: 6, ForwardWindow: 5 * time.Second}})
	if c.Members != nil || c.RepairRate != 9 || c.RepairBurst != 8 || c.AnswerBytesRate != 7 || c.AnswerBytesBurst != 6 || c.ForwardWindow != 5*time.Second {
		t.Fatalf("config %+v", c)
	}
	k := Config{Region: "eu", MemberKeys: map[string]string{"eu": "U1", "us": "U2"}}
	var got []string
	for m := range k.membership() {
		got = append(got, m)
	}
	sort.Strings(got)
	if !reflect.DeepEqual(got, []string{"eu", "us"}) {
		t.Fatalf("membership from member keys %v", got)
	}
	if (&Config{Region: "eu"}).membership() != nil {
		t.Fatal("open membership not nil")
	}
}
