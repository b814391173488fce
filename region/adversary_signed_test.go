package region_test

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/gossip"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"github.com/holdfast-io/holdfast/region"
)

// The signed half of the adversary suite: eu and us of a cluster whose
// members ap, eu and us each have an nkeys key (as `holdfast keys` and the
// demo make them), wired through gossip.ConfigFor like `holdfast region`.
// The attacker is a plain NATS client; where a row needs a member's key
// (a compromised region), it holds ap's seed (ap never runs).

type signedAdversary struct {
	*adversary
	pubs  map[string]string
	seeds map[string]string // seed file per region
	// forger signs as ap with a key of its own (not the membership's).
	forger *gossip.Keyring
	// ap signs with ap's real key: a compromised member.
	ap *gossip.Keyring
}

func newSignedAdversary(t *testing.T, maxPeerSKUs int, limits region.PeerLimits) *signedAdversary {
	t.Helper()
	dir := t.TempDir()
	pubs := map[string]string{}
	seeds := map[string]string{}
	var members []region.Member
	for _, name := range []string{"ap", "eu", "us"} {
		p := filepath.Join(dir, name+".nk")
		pub, err := gossip.WriteSeedFile(p)
		if err != nil {
			t.Fatal(err)
		}
		pubs[name], seeds[name] = pub, p
		members = append(members, region.Member{Name: name, PublicKey: pub})
	}
	w := newMRWorld(t)
	w.configure = func(c *region.Config) {
		c.Members = members
		c.SigningKeyFile = seeds[c.Name]
		c.PeerLimits = limits
		c.Escrow.MaxPeerSKUs = maxPeerSKUs
		c.FreshProbation = 200 * time.Millisecond
		c.FreshProbationMax = time.Second // ap never runs, its clean report never comes
	}
	w.transport = func(rc region.Config, c *gossip.Config) {
		// What `holdfast region` does: the membership, keys and limits
		// come from the region's config through ConfigFor.
		g := gossip.ConfigFor(rc)
		c.Members, c.MemberKeys, c.SigningKeyFile = g.Members, g.MemberKeys, g.SigningKeyFile
		c.RepairRate, c.RepairBurst = g.RepairRate, g.RepairBurst
		c.AnswerBytesRate, c.AnswerBytesBurst, c.ForwardWindow = g.AnswerBytesRate, g.AnswerBytesBurst, g.ForwardWindow
	}
	w.start("eu")
	w.start("us")
	w.waitProbationOver(10 * time.Second)
	nc, err := nats.Connect(w.srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	foreign, _, err := gossip.GenerateSeed()
	if err != nil {
		t.Fatal(err)
	}
	forger, err := gossip.NewKeyring("ap", foreign, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	apSeed, err := gossip.LoadSeedFile(seeds["ap"])
	if err != nil {
		t.Fatal(err)
	}
	ap, err := gossip.NewKeyring("ap", apSeed, pubs, "")
	if err != nil {
		t.Fatal(err)
	}
	return &signedAdversary{adversary: &adversary{w: w, nc: nc}, pubs: pubs, seeds: seeds, forger: forger, ap: ap}
}

// publishSigned sends m on its subject, sealed by k (nil: unsigned).
func (a *signedAdversary) publishSigned(k *gossip.Keyring, m escrow.Message) int {
	a.w.t.Helper()
	b, err := escrow.EncodeMessage(nil, &m)
	if err != nil {
		a.w.t.Fatal(err)
	}
	subj, err := gossip.SubjectFor(mrCluster, &m)
	if err != nil {
		a.w.t.Fatal(err)
	}
	data := k.Seal(nil, subj, b, time.Now())
	if err := a.nc.Publish(subj, data); err != nil {
		a.w.t.Fatal(err)
	}
	return len(data)
}

func (a *signedAdversary) rejected(name, reason string) float64 {
	return a.w.sites[name].tr.RejectedCount(reason)
}

func (a *signedAdversary) waitRejected(name, reason string, atLeast float64) {
	a.w.t.Helper()
	testutil.WaitFor(a.w.t, 10*time.Second, func() bool { return a.rejected(name, reason) >= atLeast },
		func() string {
			return fmt.Sprintf("%s: rejected{reason=%s} = %v, want >= %v", name, reason, a.rejected(name, reason), atLeast)
		})
}

// TestAdversarySignedForgery: rows and digests in the name of members,
// from a plain NATS client, unsigned or signed with a key that is not the
// membership's: a row of ap sending eu 1000 units of a SKU stocked with 5
// (the oversell row, now in a member's name), a row of us doing the same,
// and digests of ap and us claiming eu's rows up to 2^40 (the fence row).
// All are dropped by the transport and counted (reason signature): no unit
// is added, no claim reaches the node, eu is not fenced and keeps
// granting, and us (which the digests also reach) is untouched too.
func TestAdversarySignedForgery(t *testing.T) {
	a := newSignedAdversary(t, 0, region.PeerLimits{})
	a.w.mustDo("eu", restock("A", 5))
	before := a.rejected("eu", "signature")
	sent := []escrow.Transfer{{To: "eu", Qty: 1000}}
	seen := []escrow.RegionSeq{{Region: "eu", Seq: 1 << 40}}
	var forged int
	for _, k := range []*gossip.Keyring{nil, a.forger} {
		for _, from := range []string{"ap", "us"} {
			a.publishSigned(k, escrow.Message{Type: escrow.MsgRows, From: from, Seq: 1,
				Rows: []escrow.Row{{SKU: "A", Region: from, Seq: 1, Sent: sent}}})
			a.publishSigned(k, escrow.Message{Type: escrow.MsgDigest, From: from, Seq: 1, Seen: seen})
			forged += 2
		}
	}
	a.waitRejected("eu", "signature", before+float64(forged))
	s := a.w.sites["eu"].reg.Stats()
	if s.FenceClaims != 0 || s.NonMember != 0 || s.OutOfBounds != 0 {
		t.Fatalf("a forged message reached eu's node: %+v", s)
	}
	if got := a.available("eu", "A"); got != 5 {
		t.Fatalf("eu has %d units of A available after forged rows, want 5", got)
	}
	for _, r := range []string{"ap", "us"} {
		if row := a.w.view("eu", "A")[r]; row != nil && row.SentTo("eu") != 0 {
			t.Fatalf("eu stored a forged row of %s: %+v", r, row)
		}
	}
	if r := a.w.mustDo("eu", hold("A", 1000)); r.Err == nil {
		t.Fatalf("hold of 1000 granted: oversell %+v", r.Hold)
	}
	a.assertHealthy("A", 5)
	if r := a.w.mustDo("eu", hold("A", 5)); r.Err != nil {
		t.Fatalf("hold of the 5 real units: %v", r.Err)
	}
	if f := a.w.sites["us"].reg.Fence(); f.Fenced {
		t.Fatalf("us fenced by forged digests: %+v", f)
	}
	// The real us is still heard: replication works in the signed cluster.
	a.w.mustDo("us", restock("B", 7))
	a.w.waitKnows("eu", "us", "B", 7)
}

// forwardTo sends a forwarded command to owner's hold subject, sealed by k
// (nil: unsigned) and returns the decoded reply.
func (a *signedAdversary) forwardTo(ctx context.Context, owner string, k *gossip.Keyring, from string, cmd escrow.Command) gossip.ForwardReply {
	a.w.t.Helper()
	payload, err := gossip.EncodeForwardRequest(nil, &gossip.ForwardRequest{From: from, Cmd: cmd})
	if err != nil {
		a.w.t.Fatal(err)
	}
	subj := gossip.HoldSubject(mrCluster, owner)
	return a.request(ctx, subj, k.Seal(nil, subj, payload, time.Now()))
}

func (a *signedAdversary) request(ctx context.Context, subj string, data []byte) gossip.ForwardReply {
	a.w.t.Helper()
	msg, err := a.nc.RequestWithContext(ctx, subj, data)
	if err != nil {
		a.w.t.Fatalf("request on %s: %v", subj, err)
	}
	env, err := gossip.ParseEnvelope(msg.Data)
	if err != nil {
		a.w.t.Fatalf("reply on %s is not signed: %v", subj, err)
	}
	fr, err := gossip.DecodeForwardReply(env.Payload)
	if err != nil {
		a.w.t.Fatal(err)
	}
	return fr
}

func (a *signedAdversary) holdState(name, id string) escrow.HoldState {
	a.w.t.Helper()
	r := a.w.mustDo(name, escrow.Command{Kind: escrow.CmdGet, HoldID: id})
	if r.Err != nil || r.Hold == nil {
		a.w.t.Fatalf("get %s at %s: %+v", id, name, r)
	}
	return r.Hold.State
}

// TestAdversaryForwardedRelease: a forwarded release of eu's hold with a
// self-declared From us — unsigned, signed with a forged key for us, and
// signed by a compromised member (ap) that declares itself us — is
// refused without running: the hold stays held.
func TestAdversaryForwardedRelease(t *testing.T) {
	a := newSignedAdversary(t, 0, region.PeerLimits{})
	a.w.mustDo("eu", restock("A", 5))
	h := a.w.mustDo("eu", hold("A", 2))
	if h.Err != nil {
		t.Fatal(h.Err)
	}
	id := h.Hold.ID
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	release := escrow.Command{Kind: escrow.CmdRelease, HoldID: id}
	foreignUS, _, err := gossip.GenerateSeed()
	if err != nil {
		t.Fatal(err)
	}
	forgedUS, err := gossip.NewKeyring("us", foreignUS, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		k    *gossip.Keyring
		want string
	}{
		{"unsigned", nil, "unsigned"},
		{"forged key for us", forgedUS, "does not verify"},
		{"ap's key, From us", a.ap, "signed by"},
	} {
		fr := a.forwardTo(ctx, "eu", c.k, "us", release)
		if !fr.Refused || !strings.Contains(fr.Failure, c.want) {
			t.Fatalf("%s: reply %+v, want refused with %q", c.name, fr, c.want)
		}
	}
	if st := a.holdState("eu", id); st != escrow.Held {
		t.Fatalf("hold %s is %v after forged releases, want held", id, st)
	}
	if v := a.rejected("eu", "signature"); v < 3 {
		t.Fatalf("rejected{reason=signature} = %v, want >= 3", v)
	}
	// The genuine path still works: us forwards the release, signed.
	if r := a.w.mustDo("us", release); r.Err != nil {
		t.Fatalf("release forwarded by us: %v", r.Err)
	}
	if st := a.holdState("eu", id); st != escrow.Released {
		t.Fatalf("hold %s is %v after us released it, want released", id, st)
	}
}

// TestAdversaryForwardReplay: an eavesdropper records us's signed
// forwarded command (the release of eu's hold) and plays it again within
// the forward window: refused (replay) and counted.
func TestAdversaryForwardReplay(t *testing.T) {
	a := newSignedAdversary(t, 0, region.PeerLimits{})
	a.w.mustDo("eu", restock("A", 5))
	h := a.w.mustDo("eu", hold("A", 1))
	if h.Err != nil {
		t.Fatal(h.Err)
	}
	id := h.Hold.ID
	recorded := make(chan []byte, 4)
	sub, err := a.nc.Subscribe(gossip.HoldSubject(mrCluster, "eu"), func(m *nats.Msg) {
		select {
		case recorded <- append([]byte(nil), m.Data...):
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if r := a.w.mustDo("us", escrow.Command{Kind: escrow.CmdRelease, HoldID: id}); r.Err != nil {
		t.Fatalf("release forwarded by us: %v", r.Err)
	}
	var req []byte
	select {
	case req = <-recorded:
	case <-time.After(10 * time.Second):
		t.Fatal("the eavesdropper saw no forwarded command")
	}
	_ = sub.Unsubscribe()
	before := a.rejected("eu", "replay")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fr := a.request(ctx, gossip.HoldSubject(mrCluster, "eu"), req)
	if !fr.Refused || !strings.Contains(fr.Failure, "replay") {
		t.Fatalf("replayed command: reply %+v, want refused (replay)", fr)
	}
	if v := a.rejected("eu", "replay"); v != before+1 {
		t.Fatalf("rejected{reason=replay} %v → %v, want +1", before, v)
	}
}

// TestAdversaryRepairFlood: a compromised member (ap, its real key) sends
// 300 repair requests for sequence 0 at once. eu serves the burst (5) and
// drops the rest (rate_limit); the bytes it answers with are bounded by the
// burst, not 300 full answers.
func TestAdversaryRepairFlood(t *testing.T) {
	const burst, requests = 5, 300
	a := newSignedAdversary(t, 0, region.PeerLimits{RepairRate: 2, RepairBurst: burst})
	for i := 0; i < 200; i++ {
		a.w.mustDo("eu", restock(fmt.Sprintf("sku-%03d", i), 10))
	}
	var answers, answerBytes atomic.Int64
	var mu sync.Mutex
	sizes := []int{}
	if _, err := a.nc.Subscribe(gossip.BorrowSubject(mrCluster, "ap", "eu"), func(m *nats.Msg) {
		answers.Add(1)
		answerBytes.Add(int64(len(m.Data)))
		mu.Lock()
		sizes = append(sizes, len(m.Data))
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	before := a.rejected("eu", "rate_limit")
	start := time.Now()
	var in int
	for i := 0; i < requests; i++ {
		in += a.publishSigned(a.ap, escrow.Message{Type: escrow.MsgRepairReq, From: "ap", To: "eu", Seq: 0})
	}
	// The limiter refills at 2 a second: at most burst + 2 per second
	// elapsed (and one more, for rounding) get through.
	testutil.WaitFor(t, 10*time.Second, func() bool {
		allowed := burst + 2*int(time.Since(start).Seconds()+1)
		return a.rejected("eu", "rate_limit")-before >= float64(requests-allowed)
	}, func() string { return fmt.Sprintf("rate_limit rejections: %v", a.rejected("eu", "rate_limit")-before) })
	testutil.WaitFor(t, 10*time.Second, func() bool { return answers.Load() >= 1 },
		func() string { return "eu never answered a repair request" })
	// One full answer to sequence 0 (the 200 rows) fits in one message.
	mu.Lock()
	one := sizes[0]
	mu.Unlock()
	elapsed := time.Since(start)
	served := burst + 2*int(elapsed.Seconds()+1)
	if n := answers.Load(); n > int64(served) {
		t.Fatalf("%d answer messages for %d requests within %v; at most %d may be served", n, requests, elapsed, served)
	}
	if b := answerBytes.Load(); b > int64(served*one) || b >= int64(requests*one)/10 {
		t.Fatalf("%d bytes answered (one answer %d bytes): more than %d served answers", b, one, served)
	}
	t.Logf("repair flood: %d requests, %d bytes in; %d answers, %d bytes out (one answer %d bytes; unlimited: %d)",
		requests, in, answers.Load(), answerBytes.Load(), one, requests*one)
	a.assertHealthy("sku-000", 10)
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// dirBytes sums the sizes of the files under dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAdversarySignedSKUFlood: a compromised member (ap, its real key)
// sends digests naming 200k SKUs and rows for 100k more (20k and 10k with
// -short). eu learns at most max_peer_skus of them, stores rows only within
// that limit, counts the rest (PeerSKUsRefused), and its store grows by a
// bounded amount; it keeps serving.
func TestAdversarySignedSKUFlood(t *testing.T) {
	const limit = 1000
	digestSKUs, rowSKUs := 200_000, 100_000
	if testing.Short() {
		digestSKUs, rowSKUs = 20_000, 10_000
	}
	a := newSignedAdversary(t, limit, region.PeerLimits{})
	storeBefore := dirBytes(t, a.w.sites["eu"].dir)
	heapBefore := liveHeap()
	const perMsg = 1000
	for off := 0; off < digestSKUs; off += perMsg {
		d := make([]escrow.SKUDigest, 0, perMsg)
		for i := off; i < off+perMsg; i++ {
			d = append(d, escrow.SKUDigest{SKU: fmt.Sprintf("dg-%06d", i), Available: 1})
		}
		a.publishSigned(a.ap, escrow.Message{Type: escrow.MsgDigest, From: "ap", Seq: 1, Digest: d})
	}
	var seq uint64
	for off := 0; off < rowSKUs; off += perMsg {
		rows := make([]escrow.Row, 0, perMsg)
		for i := off; i < off+perMsg; i++ {
			seq++
			rows = append(rows, escrow.Row{SKU: fmt.Sprintf("rw-%06d", i), Region: "ap", Seq: seq, Minted: 1})
		}
		a.publishSigned(a.ap, escrow.Message{Type: escrow.MsgRows, From: "ap", Seq: seq, Rows: rows})
	}
	want := uint64(digestSKUs + rowSKUs - limit)
	s := a.waitStat("eu", "SKUs over the limit refused", func(s escrow.Stats) bool { return s.PeerSKUsRefused >= want })
	if s.PeerSKUs > limit {
		t.Fatalf("eu learned %d SKUs from peers, limit %d", s.PeerSKUs, limit)
	}
	var skus, apRows int
	a.w.inspect("eu", func(n *escrow.Node) {
		skus = len(n.SKUs())
		for _, sku := range n.SKUs() {
			if n.View(sku)["ap"] != nil {
				apRows++
			}
		}
	})
	if skus > limit || apRows > limit {
		t.Fatalf("eu keeps %d SKUs and %d rows of ap, limit %d", skus, apRows, limit)
	}
	// Rows within the limit are stored (about 100 bytes each in Pebble);
	// the refused ones are not: far below 100k rows' worth.
	grown := dirBytes(t, a.w.sites["eu"].dir) - storeBefore
	if grown > 16<<20 {
		t.Fatalf("eu's store grew by %d bytes under the flood", grown)
	}
	// The process's live heap (both regions, NATS, the test): the issue saw
	// +293 MB for this flood without the limit.
	heapGrown := int64(liveHeap()) - int64(heapBefore)
	if heapGrown > 64<<20 {
		t.Fatalf("live heap grew by %d MB under the flood", heapGrown>>20)
	}
	t.Logf("SKU flood: %d digest SKUs, %d row SKUs; learned %d, refused %d; store +%d bytes, live heap %+d KB", digestSKUs, rowSKUs,
		s.PeerSKUs, s.PeerSKUsRefused, grown, heapGrown>>10)
	a.w.mustDo("eu", restock("own", 3))
	if r := a.w.mustDo("eu", hold("own", 3)); r.Err != nil {
		t.Fatalf("hold after the flood: %v", r.Err)
	}
}

// TestAdversaryCompromisedMemberCannotFence: the fence row with a real
// member's credentials (the region-eu under the supercluster
// config; here ap, with its real key): digests claiming eu's and us's rows
// up to 2^40. Each is one voice of the two another region needs (a
// majority of three members): counted as a claim, no fence, both keep
// granting.
func TestAdversaryCompromisedMemberCannotFence(t *testing.T) {
	a := newSignedAdversary(t, 0, region.PeerLimits{})
	a.w.mustDo("eu", restock("A", 5))
	a.w.mustDo("us", restock("B", 5))
	seen := []escrow.RegionSeq{{Region: "eu", Seq: 1 << 40}, {Region: "us", Seq: 1 << 40}}
	a.publishSigned(a.ap, escrow.Message{Type: escrow.MsgDigest, From: "ap", Seq: 1, Seen: seen})
	for _, name := range []string{"eu", "us"} {
		a.waitStat(name, "ap's claim counted", func(s escrow.Stats) bool { return s.FenceClaims == 1 })
		if f := a.w.sites[name].reg.Fence(); f.Fenced {
			t.Fatalf("%s fenced by one member's voice: %+v", name, f)
		}
	}
	if r := a.w.mustDo("eu", hold("A", 1)); r.Err != nil {
		t.Fatalf("eu after one voice: %v", r.Err)
	}
	if r := a.w.mustDo("us", hold("B", 1)); r.Err != nil {
		t.Fatalf("us after one voice: %v", r.Err)
	}
}
