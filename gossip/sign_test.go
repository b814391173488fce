package gossip

import (
	"context"
	"errors"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// testKeys are the keys of a signed test cluster: one per region and one
// for the rebalancer.
type testKeys struct {
	seeds map[string][]byte
	pubs  map[string]string // region -> public key
	reb   []byte
	rebPK string
}

func newTestKeys(t testing.TB, regions ...string) *testKeys {
	t.Helper()
	k := &testKeys{seeds: map[string][]byte{}, pubs: map[string]string{}}
	for _, r := range regions {
		seed, pub, err := GenerateSeed()
		if err != nil {
			t.Fatal(err)
		}
		k.seeds[r], k.pubs[r] = seed, pub
	}
	var err error
	k.reb, k.rebPK, err = GenerateSeed()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// ring is region's keyring (RebalancerSigner: the rebalancer's).
func (k *testKeys) ring(t testing.TB, name string) *Keyring {
	t.Helper()
	seed := k.seeds[name]
	if name == RebalancerSigner {
		seed = k.reb
	}
	kr, err := NewKeyring(name, seed, k.pubs, k.rebPK)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// foreignRing signs as name with a key the membership does not list.
func foreignRing(t testing.TB, name string) *Keyring {
	t.Helper()
	seed, _, err := GenerateSeed()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := NewKeyring(name, seed, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestKeyringConfig(t *testing.T) {
	k := newTestKeys(t, "eu", "us")
	if kr, err := NewKeyring("eu", nil, nil, ""); err != nil || kr != nil || kr.Signed() || kr.Signs() {
		t.Fatalf("no keys at all: %v, %v; want an unsigned (nil) keyring", kr, err)
	}
	if _, err := NewKeyring("eu", nil, k.pubs, ""); err == nil || !strings.Contains(err.Error(), "no signing key") {
		t.Errorf("public keys without a seed: %v", err)
	}
	if _, err := NewKeyring("eu", k.seeds["us"], k.pubs, ""); err == nil || !strings.Contains(err.Error(), "not the one listed") {
		t.Errorf("eu with us's seed: %v", err)
	}
	if _, err := NewKeyring("eu", k.seeds["eu"], map[string]string{"eu": k.pubs["eu"], "us": ""}, ""); err == nil {
		t.Error("a membership with and without keys was accepted")
	}
	if _, err := NewKeyring("eu", k.seeds["eu"], map[string]string{"eu": k.pubs["eu"], "us": "UNOTAKEY"}, ""); err == nil {
		t.Error("a malformed public key was accepted")
	}
	acct, _ := nkeys.CreateAccount()
	apk, _ := acct.PublicKey()
	if _, err := NewKeyring("eu", k.seeds["eu"], map[string]string{"eu": k.pubs["eu"], "us": apk}, ""); err == nil {
		t.Error("an account (not user) public key was accepted")
	}
	if _, err := NewKeyring("eu", []byte("SUnot-a-seed"), nil, ""); err == nil {
		t.Error("a bad seed was accepted")
	}
}

// TestSignedHandle: in a signed cluster a peer message is delivered only
// if it is signed by the key the membership lists for the region it speaks
// for, on the subject it was signed for.
func TestSignedHandle(t *testing.T) {
	keys := newTestKeys(t, "eu", "us", "ap")
	in := &captureInbox{}
	tr, err := newTransport(Config{URL: "nats://127.0.0.1:1", Cluster: "c", Region: "eu", Keys: keys.ring(t, "eu"), Logger: quietLog()}, in)
	if err != nil {
		t.Fatal(err)
	}
	us, ap, reb := keys.ring(t, "us"), keys.ring(t, "ap"), keys.ring(t, RebalancerSigner)
	now := time.Now()
	rows := func(seq uint64) []byte {
		return encode(t, escrow.Message{Type: escrow.MsgRows, From: "us", Seq: seq, PrevSeq: seq - 1, Rows: []escrow.Row{row("us", "A", seq, 5)}})
	}
	seal := func(k *Keyring, subject string, payload []byte) []byte { return k.Seal(nil, subject, payload, now) }
	good := seal(us, "holdfast.c.rows.us", rows(2))
	tampered := append([]byte(nil), good...)
	tampered[len(tampered)-sigLen-3] ^= 1 // a payload byte (the row's minted count)
	badSig := append([]byte(nil), seal(us, "holdfast.c.rows.us", rows(3))...)
	badSig[len(badSig)-1] ^= 1
	digest := encode(t, escrow.Message{Type: escrow.MsgDigest, From: "us", Seq: 9})
	advice := encode(t, escrow.Message{Type: escrow.MsgAdvice, From: "rebalancer", Epoch: 1})
	cases := []struct {
		name    string
		subject string
		data    []byte
		ok      bool
	}{
		{"signed rows", "holdfast.c.rows.us", good, true},
		{"unsigned rows", "holdfast.c.rows.us", rows(4), false},
		{"tampered payload", "holdfast.c.rows.us", tampered, false},
		{"tampered signature", "holdfast.c.rows.us", badSig, false},
		{"forged sender: ap signs us's rows", "holdfast.c.rows.us", seal(ap, "holdfast.c.rows.us", rows(5)), false},
		{"unknown key speaking as us", "holdfast.c.rows.us", seal(foreignRing(t, "us"), "holdfast.c.rows.us", rows(6)), false},
		{"signer outside the membership", "holdfast.c.digest.us", seal(foreignRing(t, "zz"), "holdfast.c.digest.us", digest), false},
		{"signed for another subject", "holdfast.c.digest.us", seal(us, "holdfast.c.rows.us", digest), false},
		{"signed digest", "holdfast.c.digest.us", seal(us, "holdfast.c.digest.us", digest), true},
		{"advice signed by a region", "holdfast.c.advice", seal(us, "holdfast.c.advice", advice), false},
		{"advice signed by the rebalancer", "holdfast.c.advice", seal(reb, "holdfast.c.advice", advice), true},
		{"truncated envelope", "holdfast.c.rows.us", good[:20], false},
	}
	for _, c := range cases {
		before := counterValue(tr.m.rejected.WithLabelValues("signature"))
		n := len(in.msgs)
		got := tr.handle(c.subject, c.data, now)
		if got != c.ok || (len(in.msgs) > n) != c.ok {
			t.Errorf("%s: delivered=%v, want %v", c.name, got, c.ok)
		}
		after := counterValue(tr.m.rejected.WithLabelValues("signature"))
		if !c.ok && after != before+1 {
			t.Errorf("%s: rejected{reason=signature} %v → %v, want +1", c.name, before, after)
		}
	}
}

// TestUnsignedClusterAcceptsBoth: without keys, plain messages are
// accepted (the quick start), and so are signed ones, unwrapped (a cluster
// switching to signing region by region keeps replicating).
func TestUnsignedClusterAcceptsBoth(t *testing.T) {
	keys := newTestKeys(t, "eu", "us")
	in := &captureInbox{}
	tr, err := newTransport(Config{URL: "nats://127.0.0.1:1", Cluster: "c", Region: "eu", Logger: quietLog()}, in)
	if err != nil {
		t.Fatal(err)
	}
	m1 := encode(t, escrow.Message{Type: escrow.MsgDigest, From: "us", Seq: 1})
	m2 := encode(t, escrow.Message{Type: escrow.MsgDigest, From: "us", Seq: 2})
	if !tr.handle("holdfast.c.digest.us", m1, time.Now()) {
		t.Fatal("unsigned digest dropped by an unsigned region")
	}
	if !tr.handle("holdfast.c.digest.us", keys.ring(t, "us").Seal(nil, "holdfast.c.digest.us", m2, time.Now()), time.Now()) {
		t.Fatal("signed digest dropped by an unsigned region")
	}
	if len(in.msgs) != 2 || in.msgs[1].Seq != 2 {
		t.Fatalf("delivered %+v", in.msgs)
	}
}

// TestRepairRateLimit: repair requests beyond a peer's burst are dropped
// and counted; another peer has its own bucket.
func TestRepairRateLimit(t *testing.T) {
	in := &captureInbox{}
	tr, err := newTransport(Config{URL: "nats://127.0.0.1:1", Cluster: "c", Region: "eu", RepairRate: 1, RepairBurst: 3, Logger: quietLog()}, in)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	req := func(from string) []byte {
		return encode(t, escrow.Message{Type: escrow.MsgRepairReq, From: from, To: "eu", Seq: 0})
	}
	delivered := 0
	for i := 0; i < 300; i++ {
		if tr.handle("holdfast.c.borrow.eu.us", req("us"), now) {
			delivered++
		}
	}
	if delivered != 3 {
		t.Fatalf("%d of 300 repair requests at one instant delivered, want the burst of 3", delivered)
	}
	if v := counterValue(tr.m.rejected.WithLabelValues("rate_limit")); v != 297 {
		t.Fatalf("rejected{reason=rate_limit} = %v, want 297", v)
	}
	if !tr.handle("holdfast.c.borrow.eu.ap", req("ap"), now) {
		t.Fatal("another peer's repair request was limited")
	}
	if !tr.handle("holdfast.c.borrow.eu.us", req("us"), now.Add(1100*time.Millisecond)) {
		t.Fatal("a repair request a second later was still limited")
	}
}

// TestRepairAnswerBudget: answers (directed rows) beyond the peer's byte
// budget are not published, and counted.
func TestRepairAnswerBudget(t *testing.T) {
	_, url := testutil.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answer := func(seq uint64) escrow.Message {
		var rows []escrow.Row
		for i := 0; i < 30; i++ {
			rows = append(rows, escrow.Row{SKU: "sku-" + strings.Repeat("x", 10) + string(rune('a'+i)), Region: "eu", Seq: seq, Minted: 1})
		}
		return escrow.Message{Type: escrow.MsgRows, From: "eu", To: "us", Seq: seq, Rows: rows}
	}
	size := len(encode(t, answer(5)))
	eu, err := Connect(ctx, Config{URL: url, Cluster: "budget", Region: "eu", AnswerBytesRate: 1, AnswerBytesBurst: size * 3 / 2, Logger: quietLog()}, &captureInbox{})
	if err != nil {
		t.Fatal(err)
	}
	defer eu.Close()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var mu sync.Mutex
	got := map[escrow.MsgType]int{}
	if _, err := nc.Subscribe(BorrowSubject("budget", "us", "eu"), func(m *nats.Msg) {
		dm, err := escrow.DecodeMessage(m.Data)
		if err == nil {
			mu.Lock()
			got[dm.Type]++
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Two answers of `size` bytes: the first fits the burst of 1.5 sizes, the
	// second does not; the borrow answer after them is not limited and
	// marks that both were handled.
	eu.Send([]escrow.Message{answer(5), answer(6), {Type: escrow.MsgBorrowResp, From: "eu", To: "us", ID: 1, SKU: "A", Qty: 1}})
	testutil.WaitFor(t, 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got[escrow.MsgBorrowResp] == 1
	}, func() string { return "borrow answer not received" })
	mu.Lock()
	rowsGot := got[escrow.MsgRows]
	mu.Unlock()
	if rowsGot != 1 {
		t.Fatalf("%d repair answers published, want 1 (the second is over budget)", rowsGot)
	}
	if v := counterValue(eu.m.dropped.WithLabelValues("answer_budget")); v != 1 {
		t.Fatalf("dropped{reason=answer_budget} = %v, want 1", v)
	}
}

// signedPair connects regions eu and us of a signed cluster; eu's inbox
// records the commands it executes.
func signedPair(t *testing.T, url, cluster string, keys *testKeys, euInbox Inbox) (eu, us *Transport) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	eu, err = Connect(ctx, Config{URL: url, Cluster: cluster, Region: "eu", Keys: keys.ring(t, "eu"), Logger: quietLog()}, euInbox)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eu.Close() })
	us, err = Connect(ctx, Config{URL: url, Cluster: cluster, Region: "us", Keys: keys.ring(t, "us"), Logger: quietLog()}, &captureInbox{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { us.Close() })
	return eu, us
}

type countingInbox struct {
	captureInbox
	mu   sync.Mutex
	cmds int
}

func (c *countingInbox) Execute(ctx context.Context, cmd escrow.Command) (escrow.Reply, error) {
	c.mu.Lock()
	c.cmds++
	c.mu.Unlock()
	return escrow.Reply{Kind: cmd.Kind}, nil
}

func (c *countingInbox) executed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmds
}

// TestSignedForward: a signed forwarded command runs once; the same bytes
// replayed by an eavesdropper, an unsigned command, one signed by another
// key for us, and one signed outside the time window are refused without
// running; the reply is signed by the owner and bound to the request.
func TestSignedForward(t *testing.T) {
	_, url := testutil.NATS(t)
	keys := newTestKeys(t, "eu", "us")
	inbox := &countingInbox{}
	eu, us := signedPair(t, url, "signed", keys, inbox)
	subject := HoldSubject("signed", "eu")

	spy, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Close()
	recorded := make(chan []byte, 1)
	if _, err := spy.Subscribe(subject, func(m *nats.Msg) {
		select {
		case recorded <- append([]byte(nil), m.Data...):
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	release := escrow.Command{Kind: escrow.CmdRelease, HoldID: "eu-0000000000000001"}
	if _, err := escrow.OwnerOf(release.HoldID); err != nil {
		t.Skipf("hold id format changed: %v", err)
	}
	rp, err := us.Forward(ctx, "eu", release)
	if err != nil || rp.Kind != escrow.CmdRelease {
		t.Fatalf("signed forward: %+v, %v", rp, err)
	}
	if inbox.executed() != 1 {
		t.Fatalf("executed %d, want 1", inbox.executed())
	}
	var req []byte
	select {
	case req = <-recorded:
	case <-ctx.Done():
		t.Fatal("the spy did not see the request")
	}

	refused := func(name string, data []byte, want string) {
		t.Helper()
		msg, err := spy.RequestWithContext(ctx, subject, data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		env, err := ParseEnvelope(msg.Data)
		if err != nil || env.Signer != "eu" {
			t.Fatalf("%s: reply not signed by eu: %v", name, err)
		}
		fr, err := DecodeForwardReply(env.Payload)
		if err != nil || !fr.Refused || !strings.Contains(fr.Failure, want) {
			t.Fatalf("%s: reply %+v, %v; want refused with %q", name, fr, err, want)
		}
	}
	refused("replayed", req, "replay")
	payload, err := EncodeForwardRequest(nil, &ForwardRequest{From: "us", Cmd: release})
	if err != nil {
		t.Fatal(err)
	}
	refused("unsigned", payload, "unsigned")
	refused("forged key", foreignRing(t, "us").Seal(nil, subject, payload, time.Now()), "does not verify")
	refused("stale", keys.ring(t, "us").Seal(nil, subject, payload, time.Now().Add(-time.Hour)), "stale")
	refused("from the future", keys.ring(t, "us").Seal(nil, subject, payload, time.Now().Add(time.Hour)), "stale")
	refused("us signs a command from eu", keys.ring(t, "us").Seal(nil, subject, mustEncodeForward(t, "eu", release), time.Now()), "signed by")
	if inbox.executed() != 1 {
		t.Fatalf("executed %d after refused commands, want 1", inbox.executed())
	}
	if v := counterValue(eu.m.rejected.WithLabelValues("replay")); v != 3 {
		t.Errorf("rejected{reason=replay} = %v, want 3 (replayed, stale, future)", v)
	}
	if v := counterValue(eu.m.rejected.WithLabelValues("signature")); v != 3 {
		t.Errorf("rejected{reason=signature} = %v, want 3", v)
	}
}

func mustEncodeForward(t *testing.T, from string, cmd escrow.Command) []byte {
	t.Helper()
	b, err := EncodeForwardRequest(nil, &ForwardRequest{From: from, Cmd: cmd})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestForwardReplyMustBeSigned: a requester in a signed cluster refuses a
// reply not signed by the owner (an impostor answering on hold.eu).
func TestForwardReplyMustBeSigned(t *testing.T) {
	_, url := testutil.NATS(t)
	keys := newTestKeys(t, "eu", "us")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	us, err := Connect(ctx, Config{URL: url, Cluster: "imp", Region: "us", Keys: keys.ring(t, "us"), Logger: quietLog()}, &captureInbox{})
	if err != nil {
		t.Fatal(err)
	}
	defer us.Close()
	imp, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer imp.Close()
	if _, err := imp.Subscribe(HoldSubject("imp", "eu"), func(m *nats.Msg) {
		data, _ := EncodeForwardReply(nil, &ForwardReply{Reply: escrow.Reply{Kind: escrow.CmdRelease}})
		_ = m.Respond(foreignRing(t, "eu").Seal(nil, replyContext(m.Data), data, time.Now()))
	}); err != nil {
		t.Fatal(err)
	}
	if err := imp.Flush(); err != nil {
		t.Fatal(err)
	}
	_, err = us.Forward(ctx, "eu", escrow.Command{Kind: escrow.CmdRelease, HoldID: "eu-0000000000000001"})
	if !errors.Is(err, ErrSignature) {
		t.Fatalf("impostor's reply: %v, want ErrSignature", err)
	}
	if errors.Is(err, region.ErrUnreachable) {
		t.Fatal("an impostor's reply read as an unreachable owner")
	}
}

// TestSignedClusterReplicates: two signed regions exchange rows over NATS
// (the good path end to end).
func TestSignedClusterReplicates(t *testing.T) {
	_, url := testutil.NATS(t)
	keys := newTestKeys(t, "eu", "us")
	in := &captureInbox{}
	_, us := signedPair(t, url, "repl", keys, in)
	us.Send([]escrow.Message{{Type: escrow.MsgRows, From: "us", Seq: 1, Rows: []escrow.Row{row("us", "A", 1, 5)}}})
	testutil.WaitFor(t, 5*time.Second, func() bool {
		in.mu.Lock()
		defer in.mu.Unlock()
		return len(in.msgs) == 1
	}, func() string { return "rows not delivered" })
}
