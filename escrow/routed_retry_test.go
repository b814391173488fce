package escrow

import (
	"testing"
	"time"
)

// TestRoutedRetryHomeUnreachable: eu routes a keyed hold of A to its home
// us. The home's answer is lost; the shopper retries at eu while us cannot
// be reached. Neither the retry (us gone) nor the runtime's fallback of the
// retry (Routed, us unreachable) may grant a hold at eu: us may hold the
// first attempt. The fallback of the attempt that made the decision runs
// at eu, once. (The simulator's linkloss + crash found the second hold:
// double_holds.)
func TestRoutedRetryHomeUnreachable(t *testing.T) {
	tw := newHomesNet(t, Config{PeerSilence: -1, HomeTTL: time.Minute}, "ap", "eu", "us")
	eu := tw.nodes["eu"]
	tw.nodes["us"].restock("A", 5)
	eu.restock("A", 5)
	tw.flush()
	tw.advise(1, Home{"A", "us"})
	try := func(key string, routed bool, gone string) *Reply {
		eu.req++
		c := Command{Kind: CmdHold, ReqID: eu.req, Lines: []Line{l("A", 1)}, IdemKey: key, IdemHash: 1, Routed: routed}
		if err := eu.n.Step(Input{Now: eu.now, Cmd: &c, Unreachable: gone}); err != nil {
			t.Fatal(err)
		}
		for _, r := range eu.drain() {
			if r.ReqID == c.ReqID {
				return &r
			}
		}
		return nil
	}
	wantRouted(t, eu, "first attempt", try("k", false, ""), "us")
	wantRouted(t, eu, "k2 first attempt", try("k2", false, ""), "us")
	// us answered k (granted), the answer was lost; us then went away.
	if r := try("k", false, "us"); r == nil || r.Err == nil || r.Err.Code != CodeHomeUnreachable || r.Err.Owner != "us" {
		t.Fatalf("retry while the home is gone: %+v, want home-unreachable naming us", r)
	}
	if r := try("k", true, "us"); r == nil || r.Err == nil || r.Err.Code != CodeHomeUnreachable {
		t.Fatalf("fallback of a retry: %+v, want home-unreachable", r)
	}
	// The fallback of k2's own routing decision runs here (us never saw
	// it)...
	if r := try("k2", true, "us"); r == nil || r.Err != nil && r.Err.Code == CodeHomeUnreachable {
		t.Fatalf("fallback of the routing decision refused: %+v", r)
	}
	// ...once: a second fallback of that key makes no second hold.
	if r := try("k2", true, "us"); r == nil || r.Hold != nil && !r.Replayed {
		t.Fatalf("second fallback of k2: %+v, want a replay or a refusal", r)
	}
	if s := eu.n.Stats(); s.RoutedRetryRefused < 2 {
		t.Fatalf("RoutedRetryRefused %d, want 2 or more", s.RoutedRetryRefused)
	}
}
