package gossip

import (
	"context"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/holdfast-io/holdfast/escrow"
)

// TestAdviceChannelSigned: the rebalancer's channel signs its advice (a
// signed region accepts it, and refuses advice signed with another key),
// and delivers only digests signed by the region they speak for.
func TestAdviceChannelSigned(t *testing.T) {
	_, url := testutil.NATS(t)
	keys := newTestKeys(t, "eu", "us")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in := &captureInbox{}
	eu, err := Connect(ctx, Config{URL: url, Cluster: "adv", Region: "eu", Keys: keys.ring(t, "eu"), Logger: quietLog()}, in)
	if err != nil {
		t.Fatal(err)
	}
	defer eu.Close()

	var mu sync.Mutex
	var digests []escrow.Message
	rejected := map[string]int{} // by subject
	reb, err := DialAdvice(ctx, AdviceConfig{URL: url, Cluster: "adv", Name: "reb", Keys: keys.ring(t, RebalancerSigner),
		OnReject: func(_, subject string, _ error) { mu.Lock(); rejected[subject]++; mu.Unlock() }},
		func(subject string, data []byte) {
			m, err := escrow.DecodeMessage(data)
			if err == nil && m.Type == escrow.MsgDigest {
				mu.Lock()
				digests = append(digests, m)
				mu.Unlock()
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	defer reb.Close()
	forger, err := DialAdvice(ctx, AdviceConfig{URL: url, Cluster: "adv", Name: "forger", Keys: foreignRing(t, RebalancerSigner)}, func(string, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Close()

	advice := encode(t, escrow.Message{Type: escrow.MsgAdvice, From: "rebalancer", Epoch: 7})
	if err := forger.Publish(advice); err != nil {
		t.Fatal(err)
	}
	if err := reb.Publish(advice); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, func() bool {
		in.mu.Lock()
		defer in.mu.Unlock()
		return len(in.msgs) == 1 && eu.RejectedCount("signature") == 1
	}, func() string { return "eu did not take the signed advice and drop the forged one" })

	// Digests: us's signed one is delivered; an unsigned one and one signed
	// by eu on us's subject are not.
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	digest := encode(t, escrow.Message{Type: escrow.MsgDigest, From: "us", Seq: 3})
	subject := DigestSubject("adv", "us")
	for _, data := range [][]byte{digest, keys.ring(t, "eu").Seal(nil, subject, digest, time.Now()),
		keys.ring(t, "us").Seal(nil, subject, digest, time.Now())} {
		if err := nc.Publish(subject, data); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(digests) == 1 && rejected[subject] == 2
	}, func() string {
		mu.Lock()
		defer mu.Unlock()
		return "digests: want 1 delivered and 2 rejected"
	})
	mu.Lock()
	defer mu.Unlock()
	if rejected[AdviceSubject("adv")] != 1 {
		t.Errorf("the rebalancer rejected %d advice messages, want 1 (the forger's)", rejected[AdviceSubject("adv")])
	}
}
