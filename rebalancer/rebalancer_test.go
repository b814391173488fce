package rebalancer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/gossip"
	"github.com/holdfast-io/holdfast/internal/testutil"
)

type adviceLog struct {
	mu  sync.Mutex
	all []escrow.Message
}

func (l *adviceLog) add(m escrow.Message) {
	l.mu.Lock()
	l.all = append(l.all, m)
	l.mu.Unlock()
}

func (l *adviceLog) snapshot() []escrow.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]escrow.Message(nil), l.all...)
}

// withMoves returns the advice that carries moves, from any daemon.
func (l *adviceLog) withMoves() []escrow.Message {
	var out []escrow.Message
	for _, m := range l.snapshot() {
		if len(m.Moves) > 0 {
			out = append(out, m)
		}
	}
	return out
}

// subscribeAdvice records every advice published on the cluster.
func subscribeAdvice(t *testing.T, url, cluster string) *adviceLog {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	l := &adviceLog{}
	if _, err := nc.Subscribe(gossip.AdviceSubject(cluster), func(msg *nats.Msg) {
		m, err := escrow.DecodeMessage(msg.Data)
		if err != nil {
			t.Errorf("undecodable advice: %v", err)
			return
		}
		l.add(m)
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return l
}

// publishDigests plays two regions: a is hot and empty, b is cold and full.
func publishDigests(ctx context.Context, t *testing.T, url, cluster string) {
	playDigests(ctx, t, url, cluster, func(seq uint64) []escrow.Message {
		return []escrow.Message{
			{Type: escrow.MsgDigest, From: "a", Seq: seq, Digest: []escrow.SKUDigest{{SKU: "A", Available: 0, DemandMilli: 9000, Rejected: seq}}},
			{Type: escrow.MsgDigest, From: "b", Seq: seq, Digest: []escrow.SKUDigest{{SKU: "A", Available: 100, DemandMilli: 1000}}},
		}
	})
}

// playDigests publishes the digests of round seq every 50ms until ctx
// ends, and garbage on the digest subject each time, which the daemon must
// reject without crashing.
func playDigests(ctx context.Context, t *testing.T, url, cluster string, round func(seq uint64) []escrow.Message) {
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Error(err)
		return
	}
	defer nc.Close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for seq := uint64(1); ; seq++ {
		for _, m := range round(seq) {
			b, err := escrow.EncodeMessage(nil, &m)
			if err != nil {
				t.Error(err)
				return
			}
			_ = nc.Publish(gossip.DigestSubject(cluster, m.From), b) // fails only while reconnecting
		}
		_ = nc.Publish(gossip.DigestSubject(cluster, "c"), []byte("junk"))
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func startDaemon(t *testing.T, ctx context.Context, cfg Config) (done chan error, addr chan string) {
	t.Helper()
	done = make(chan error, 1)
	addr = make(chan string, 1)
	cfg.OnListen = func(a string) { addr <- a }
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	go func() { done <- Run(ctx, cfg) }()
	return done, addr
}

func TestDaemonAdvisesAndSurvivesReconnect(t *testing.T) {
	s, _ := testutil.NATS(t)
	url := s.ClientURL()
	const cluster = "t1"
	advice := subscribeAdvice(t, url, cluster)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go publishDigests(ctx, t, url, cluster)
	done, addrc := startDaemon(t, ctx, Config{NATSURL: url, Cluster: cluster, Interval: 100 * time.Millisecond,
		HTTPAddr: "127.0.0.1:0", Settle: 400 * time.Millisecond, ReconnectWait: 50 * time.Millisecond})
	addr := <-addrc

	testutil.Eventually(t, 10*time.Second, "advice moving stock from b to a", func() bool { return len(advice.withMoves()) > 0 })
	first := advice.withMoves()[0]
	if first.From != DefaultID || len(first.Moves) != 1 || first.Moves[0].From != "b" || first.Moves[0].To != "a" ||
		first.Moves[0].Qty != 90 {
		t.Fatalf("first advice: %+v", first)
	}
	// The digests keep saying b has 100: while the move is in flight it is
	// not repeated, after Settle it is (regions did not apply it).
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %s", resp.Status)
	}
	body := get(t, "http://"+addr+"/metrics")
	for _, want := range []string{"holdfast_rebalancer_rounds_total", "holdfast_rebalancer_messages_rejected_total{reason=\"decode\"}",
		"holdfast_rebalancer_nats_connected 1"} {
		if !strings.Contains(body, want) {
			t.Fatalf("metrics lack %q:\n%s", want, body)
		}
	}

	// Restart NATS on the same port: the daemon reconnects and advises again.
	port := s.Addr().(*net.TCPAddr).Port
	s.Shutdown()
	s.WaitForShutdown()
	before := len(advice.snapshot())
	testutil.NATSOnPort(t, port)
	testutil.Eventually(t, 15*time.Second, "advice after the NATS restart", func() bool { return len(advice.snapshot()) > before+3 })

	all := advice.snapshot()
	for i := 1; i < len(all); i++ {
		if all[i].Epoch <= all[i-1].Epoch {
			t.Fatalf("epoch went from %d to %d", all[i-1].Epoch, all[i].Epoch)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTwoDaemonsOneLeads: with two daemons only the smaller id publishes;
// when it stops, the other takes over with higher epochs.
func TestTwoDaemonsOneLeads(t *testing.T) {
	s, _ := testutil.NATS(t)
	url := s.ClientURL()
	const cluster = "t2"
	advice := subscribeAdvice(t, url, cluster)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go publishDigests(ctx, t, url, cluster)
	ctxA, cancelA := context.WithCancel(ctx)
	doneA, _ := startDaemon(t, ctxA, Config{NATSURL: url, Cluster: cluster, ID: "rb_a", Interval: 50 * time.Millisecond})
	testutil.Eventually(t, 10*time.Second, "rb_a to publish", func() bool { return len(advice.snapshot()) > 0 })
	doneB, _ := startDaemon(t, ctx, Config{NATSURL: url, Cluster: cluster, ID: "rb_b", Interval: 50 * time.Millisecond})
	// Let several rounds of both pass. rb_b may publish until it has folded
	// rb_a's first advice: its first tick can win the select against the
	// inbound advice, and on a loaded machine its start may lag rb_a by
	// several rounds. So the rounds checked are the ten after those.
	n0 := len(advice.snapshot())
	testutil.Eventually(t, 10*time.Second, "more rounds", func() bool { return len(advice.snapshot()) > n0+10 })
	n1 := len(advice.snapshot())
	testutil.Eventually(t, 10*time.Second, "rounds with both running", func() bool { return len(advice.snapshot()) > n1+10 })
	var fromB int
	for _, m := range advice.snapshot()[n1:] {
		if m.From == "rb_b" {
			fromB++
		}
	}
	if fromB > 0 {
		t.Fatalf("rb_b published %d advice while rb_a leads", fromB)
	}
	cancelA()
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	all := advice.snapshot()
	stopped, lastA := 0, uint64(0)
	for i, m := range all {
		if m.From == "rb_a" {
			stopped, lastA = i+1, m.Epoch
		}
	}
	testutil.Eventually(t, 10*time.Second, "rb_b to take over", func() bool {
		all := advice.snapshot()
		return all[len(all)-1].From == "rb_b"
	})
	// The takeover: every advice rb_b publishes once rb_a has stopped is
	// above rb_a's last epoch.
	for _, m := range advice.snapshot()[stopped:] {
		if m.From == "rb_b" && m.Epoch <= lastA {
			t.Fatalf("rb_b epoch %d not above rb_a's last %d", m.Epoch, lastA)
		}
	}
	cancel()
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	for i, c := range []Config{
		{Cluster: "c"},
		{NATSURL: "nats://127.0.0.1:1", Cluster: "bad.cluster"},
		{NATSURL: "nats://127.0.0.1:1", Cluster: "c", ID: "Bad-ID"},
		{NATSURL: "nats://127.0.0.1:1", Cluster: "c", Interval: time.Microsecond},
		{NATSURL: "nats://127.0.0.1:1", Cluster: "c", Policy: escrow.RebalancePolicy{Hysteresis: -1}},
	} {
		if err := Run(context.Background(), c); err == nil {
			t.Errorf("config %d accepted: %+v", i, c)
		}
	}
}

// TestDaemonNamesHomesEveryRound: a SKU with fewer units than its demand
// over the scarce horizon gets a home, the region with the most demand,
// and every advice names it again (regions drop homes HomeTTL after the
// latest advice), whether or not it has moves; the homes gauge says so.
func TestDaemonNamesHomesEveryRound(t *testing.T) {
	s, _ := testutil.NATS(t)
	url := s.ClientURL()
	const cluster = "t3"
	advice := subscribeAdvice(t, url, cluster)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// 3 units of S for 6 units/s of demand: scarce over 5s. a has most of
	// the demand.
	go playDigests(ctx, t, url, cluster, func(seq uint64) []escrow.Message {
		return []escrow.Message{
			{Type: escrow.MsgDigest, From: "a", Seq: seq, Digest: []escrow.SKUDigest{{SKU: "S", Available: 1, DemandMilli: 5000}}},
			{Type: escrow.MsgDigest, From: "b", Seq: seq, Digest: []escrow.SKUDigest{{SKU: "S", Available: 2, DemandMilli: 1000}}},
		}
	})
	done, addrc := startDaemon(t, ctx, Config{NATSURL: url, Cluster: cluster, Interval: 50 * time.Millisecond,
		HTTPAddr: "127.0.0.1:0"})
	addr := <-addrc
	homed := func(m escrow.Message) bool {
		return len(m.Homes) == 1 && m.Homes[0] == escrow.Home{SKU: "S", Region: "a"}
	}
	testutil.Eventually(t, 10*time.Second, "an advice naming a the home of S", func() bool {
		for _, m := range advice.snapshot() {
			if homed(m) {
				return true
			}
		}
		return false
	})
	first := 0
	for i, m := range advice.snapshot() {
		if homed(m) {
			first = i
			break
		}
	}
	testutil.Eventually(t, 10*time.Second, "ten more rounds", func() bool { return len(advice.snapshot()) > first+10 })
	for i, m := range advice.snapshot()[first:] {
		if !homed(m) {
			t.Fatalf("advice %d after the first home: homes %+v, moves %+v", i, m.Homes, m.Moves)
		}
		if len(m.Moves) > 0 {
			t.Fatalf("a homed SKU was also moved: %+v", m.Moves)
		}
	}
	if body := get(t, "http://"+addr+"/metrics"); !strings.Contains(body, "holdfast_rebalancer_homes 1\n") {
		t.Fatalf("metrics lack the homes gauge at 1:\n%s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestEncodeAdviceFitsTheLimit: an advice with the most homes and moves
// the wire allows, with the longest SKU names, is over the message size
// limit; it still goes out, with every home and as many moves as fit.
func TestEncodeAdviceFitsTheLimit(t *testing.T) {
	sku := func(i int) string { return fmt.Sprintf("%0*d", escrow.MaxSKULen, i) }
	adv := escrow.Message{Type: escrow.MsgAdvice, From: "rebalancer", Epoch: 1}
	for i := 0; i < escrow.MaxWireHomes; i++ {
		adv.Homes = append(adv.Homes, escrow.Home{SKU: sku(i), Region: "eu"})
	}
	for i := 0; i < escrow.MaxWireMoves; i++ {
		adv.Moves = append(adv.Moves, escrow.Move{SKU: sku(escrow.MaxWireHomes + i), From: "us", To: "eu", Qty: 1})
	}
	if _, err := escrow.EncodeMessage(nil, &adv); err == nil {
		t.Fatal("the full advice fits: the test needs a bigger one")
	}
	b, dropped, err := encodeAdvice(nil, &adv)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > escrow.MaxMessageBytes || dropped == 0 || len(adv.Moves) == 0 || dropped+len(adv.Moves) != escrow.MaxWireMoves {
		t.Fatalf("%d bytes, %d moves dropped, %d kept", len(b), dropped, len(adv.Moves))
	}
	m, err := escrow.DecodeMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Homes) != escrow.MaxWireHomes || len(m.Moves) != len(adv.Moves) {
		t.Fatalf("decoded %d homes and %d moves", len(m.Homes), len(m.Moves))
	}
}
