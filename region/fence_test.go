package region_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/escrow/escrowtest"
	"github.com/holdfast-io/holdfast/httpapi"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"github.com/holdfast-io/holdfast/region"
)

// fenceWorld is a two-region world (real Pebble, embedded NATS) whose
// regions start on probation when their store is empty, as `holdfast
// region --nats-url` does; ignoreFence disables the fence at eu (the bug
// that shows what it prevents).
func fenceWorld(t *testing.T, ignoreFence bool) *mrWorld {
	w := newMRWorld(t)
	w.configure = func(c *region.Config) {
		c.FreshProbation, c.FreshProbationMax = 200*time.Millisecond, 20*time.Second
		c.Escrow = escrowtest.WithBugs(c.Escrow, escrowtest.Bugs{IgnoreFence: ignoreFence && c.Name == "eu"})
		// Units move only by the loans the tests make (no top-up), so
		// that each test knows exactly what eu lent or borrowed.
		c.Escrow.TopUpHorizon = -1
	}
	return w
}

// mustHoldBorrowing holds one unit of sku at name, which has none of its
// own: the hold borrows from a peer. A borrow answered after its deadline (a
// loaded machine) refuses with insufficient-stock and moves nothing, so the
// hold is asked again until it is granted or 5s pass; any other refusal fails.
func (w *mrWorld) mustHoldBorrowing(name, sku string) {
	w.t.Helper()
	var last escrow.Reply
	testutil.WaitFor(w.t, 5*time.Second, func() bool {
		last = w.mustDo(name, hold(sku, 1))
		if last.Err != nil && last.Err.Code != escrow.CodeInsufficientStock {
			w.t.Fatalf("hold %s at %s: %v", sku, name, last.Err)
		}
		return last.Err == nil
	}, func() string { return fmt.Sprintf("hold %s at %s never granted: %v", sku, name, last.Err) })
}

type httpResult struct {
	status int
	header http.Header
	body   []byte
}

func (h httpResult) problem(t *testing.T) api.Problem {
	t.Helper()
	var p api.Problem
	if err := json.Unmarshal(h.body, &p); err != nil {
		t.Fatalf("status %d, body %q: %v", h.status, h.body, err)
	}
	return p
}

func httpCall(t *testing.T, method, url, body string) httpResult {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return httpResult{status: resp.StatusCode, header: resp.Header, body: b}
}

// waitProbationOver waits until no running region is on probation and
// returns how long that took.
func (w *mrWorld) waitProbationOver(within time.Duration) time.Duration {
	w.t.Helper()
	return testutil.WaitFor(w.t, within, func() bool {
		for _, n := range w.running() {
			if f := w.sites[n].reg.Fence(); f.Fenced {
				return false
			}
		}
		return true
	}, func() string { return "a region is still fenced or on probation" })
}

// TestRegionFenceWipedStore is the store fence end to end: eu grants holds
// on units borrowed from us, stops, loses its data directory and restarts
// under the same name. It must refuse holds (503 fenced) instead of
// granting the units its lost holds took, though it counts them as
// available; it says why (status, metric, readyz, marker file) and stays
// fenced across a restart. Without the fence the same region oversells.
func TestRegionFenceWipedStore(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		name := "fenced"
		if ignore {
			name = "without fence it oversells"
		}
		t.Run(name, func(t *testing.T) { testWipedStore(t, ignore) })
	}
}

func testWipedStore(t *testing.T, ignoreFence bool) {
	w := fenceWorld(t, ignoreFence)
	w.start("eu")
	w.start("us")
	took := w.waitProbationOver(10 * time.Second)
	t.Logf("two fresh regions: probation over after %v", took)
	if r := w.mustDo("us", restock("A", 10)); r.Err != nil {
		t.Fatal(r.Err)
	}
	w.waitKnows("eu", "us", "A", 10)
	for i := 0; i < 5; i++ { // eu borrows from us for each
		w.mustHoldBorrowing("eu", "A")
	}
	w.waitConverged("A", 5*time.Second)
	var euSeq uint64
	w.inspect("eu", func(n *escrow.Node) { euSeq = n.Seq() })
	var usSaw uint64
	w.inspect("us", func(n *escrow.Node) { usSaw = n.PeerSeq("eu") })
	if euSeq == 0 || usSaw != euSeq {
		t.Fatalf("eu at seq %d, us has seen %d", euSeq, usSaw)
	}

	// The disk is replaced: same name, empty directory.
	w.stop("eu")
	dir := w.sites["eu"].dir
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	restarted := time.Now()
	eu := w.start("eu")
	base := w.serveAPI("eu")

	// The first hold: held back by the probation, then refused by the fence
	// once us's digest shows that us has seen more of eu than eu has.
	res := httpCall(t, "POST", base+"/v1/holds", `{"items":[{"sku":"A","qty":1}]}`)
	if ignoreFence {
		// Wait until eu learned us's row (a repair): the 5 units it lent to
		// eu look available again, and eu grants them a second time.
		testutil.WaitFor(t, 10*time.Second, func() bool {
			var a uint64
			w.inspect("eu", func(n *escrow.Node) { a = n.Available("A") })
			return a == 5
		}, func() string { return "eu never counted us's loan" })
		granted := 0
		for i := 0; i < 5; i++ {
			if r := w.mustDo("eu", hold("A", 1)); r.Err == nil {
				granted++
			}
		}
		if granted != 5 {
			t.Fatalf("without the fence the wiped eu granted %d", granted)
		}
		var usHas uint64
		w.inspect("us", func(n *escrow.Node) { usHas = n.Available("A") })
		if usHas != 5 {
			t.Fatalf("us has %d", usHas)
		}
		t.Logf("without the fence: of 10 units, 5 were held at eu before the wipe, us still has %d, and the "+
			"wiped eu granted %d more: oversold by %d", usHas, granted, 5+usHas+uint64(granted)-10)
		return
	}
	if res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") == "" {
		t.Fatalf("hold at the wiped eu: %d %s", res.status, res.body)
	}
	p := res.problem(t)
	if p.Type != httpapi.ProblemTypeBase+"fenced" || !strings.Contains(p.Detail, "docs/operations.md") {
		t.Fatalf("problem %+v", p)
	}
	t.Logf("wiped eu refused its first hold %v after restart: %s", time.Since(restarted).Round(time.Millisecond), p.Detail)
	f := eu.reg.Fence()
	if !f.Fenced || f.Probation || f.Peer != "us" || f.PeerSeen != euSeq || f.OwnSeq != 0 {
		t.Fatalf("fence %+v, want fenced by us at %d", f, euSeq)
	}
	if !strings.Contains(p.Detail, "sequence "+itoa(euSeq)) || !strings.Contains(p.Detail, "sequence 0") {
		t.Fatalf("detail does not name both sequences: %s", p.Detail)
	}
	// It counts the lent units as available, and still refuses.
	testutil.WaitFor(t, 10*time.Second, func() bool {
		var a uint64
		w.inspect("eu", func(n *escrow.Node) { a = n.Available("A") })
		return a == 5
	}, func() string { return "eu never learned us's row" })
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/holds", `{"items":[{"sku":"A","qty":1}]}`},
		{"POST", "/v1/skus/A/restock", `{"qty":3}`},
		{"POST", "/v1/skus/A/write-off", `{"qty":1}`},
	} {
		res := httpCall(t, c.method, base+c.path, c.body)
		if res.status != http.StatusServiceUnavailable || res.problem(t).Type != httpapi.ProblemTypeBase+"fenced" ||
			res.header.Get("Retry-After") != "60" {
			t.Fatalf("%s %s while fenced: %d %v %s", c.method, c.path, res.status, res.header, res.body)
		}
	}
	if res := httpCall(t, "GET", base+"/v1/skus/A", ""); res.status != http.StatusOK {
		t.Fatalf("stock read while fenced: %d %s", res.status, res.body)
	}
	if res := httpCall(t, "GET", base+"/readyz", ""); res.status != http.StatusServiceUnavailable ||
		res.problem(t).Type != httpapi.ProblemTypeBase+"fenced" {
		t.Fatalf("readyz while fenced: %d %s", res.status, res.body)
	}
	if v := gaugeValue(t, eu.reg, "holdfast_region_fenced"); v != 1 {
		t.Fatalf("holdfast_region_fenced = %v", v)
	}
	if s := eu.reg.Stats(); s.Granted != 0 || s.FenceRefused < 4 {
		t.Fatalf("stats %+v", s)
	}
	var usNow uint64
	w.inspect("us", func(n *escrow.Node) { usNow = n.PeerSeq("eu") })
	if usNow != euSeq {
		t.Fatalf("us has seen eu up to %d: the fenced eu wrote", usNow)
	}

	// A restart (a supervisor's restart loop) keeps it fenced at once,
	// before any digest: the marker in its data directory.
	if _, err := os.Stat(filepath.Join(dir, region.FenceMarkerFile)); err != nil {
		t.Fatalf("fence marker: %v", err)
	}
	w.stop("eu")
	eu = w.start("eu")
	if f := eu.reg.Fence(); !f.Fenced || f.Probation || f.Peer != "us" {
		t.Fatalf("after restart: %+v", f)
	}
	if r := w.mustDo("eu", hold("A", 1)); r.Err == nil || r.Err.Code != escrow.CodeFenced {
		t.Fatalf("hold after restart: %+v", r)
	}
}

// TestRegionProbationFreshStore: a region that starts with an empty store
// next to a peer that never saw it ends its probation within a few digest
// intervals; a write that arrives meanwhile waits and then succeeds. A
// region restarted with its store is not on probation.
func TestRegionProbationFreshStore(t *testing.T) {
	w := fenceWorld(t, false)
	w.start("us")
	w.start("eu")
	if f := w.sites["eu"].reg.Fence(); !f.Fenced || !f.Probation {
		t.Fatalf("fresh eu: %+v", f)
	}
	base := w.serveAPI("eu")
	if res := httpCall(t, "GET", base+"/readyz", ""); res.status != http.StatusServiceUnavailable {
		t.Logf("readyz during probation: %d (the probation may already be over)", res.status)
	}
	start := time.Now()
	res := httpCall(t, "POST", base+"/v1/skus/A/restock", `{"qty":2}`)
	if res.status != http.StatusOK {
		t.Fatalf("restock during probation: %d %s", res.status, res.body)
	}
	t.Logf("restock sent during the probation answered after %v", time.Since(start).Round(time.Millisecond))
	if f := w.sites["eu"].reg.Fence(); f.Fenced || !strings.Contains(f.Detail, "us reported") {
		t.Fatalf("after probation: %+v", f)
	}
	if res := httpCall(t, "GET", base+"/readyz", ""); res.status != http.StatusOK {
		t.Fatalf("readyz after probation: %d %s", res.status, res.body)
	}
	w.stop("eu")
	w.start("eu")
	if f := w.sites["eu"].reg.Fence(); f.Fenced {
		t.Fatalf("restarted eu with state: %+v", f)
	}
	if r := w.mustDo("eu", hold("A", 1)); r.Err != nil {
		t.Fatal(r.Err)
	}
}

func gaugeValue(t *testing.T, r *region.Region, name string) float64 {
	t.Helper()
	mfs, err := r.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func itoa(v uint64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// copyDir copies the files of a stopped region's directory (a backup).
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		src, dst := filepath.Join(from, e.Name()), filepath.Join(to, e.Name())
		if e.IsDir() {
			copyDir(t, src, dst)
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRegionFenceRestoredBackup: a region restored from an older copy of
// its directory is not fresh, so it has no probation, but the digests of
// a majority of its peers that saw its newer rows fence it; until then
// (about one digest interval) it would grant, which docs/operations.md names as the residual
// risk of restores.
func TestRegionFenceRestoredBackup(t *testing.T) {
	// Three regions: a store that is not empty is fenced only when a
	// majority of its other members (us and ap) report it behind; in a
	// two-region cluster the one peer's report is a lone claim
	// (escrow/fence_quorum.go, docs/operations.md).
	w := fenceWorld(t, false)
	w.start("eu")
	w.start("us")
	w.start("ap")
	w.waitProbationOver(10 * time.Second)
	w.mustDo("us", restock("A", 10))
	w.waitKnows("eu", "us", "A", 10)
	for i := 0; i < 2; i++ {
		w.mustHoldBorrowing("eu", "A")
	}
	w.stop("eu")
	dir := w.sites["eu"].dir
	backup := filepath.Join(t.TempDir(), "eu-backup")
	copyDir(t, dir, backup)
	var backupSeq uint64
	w.start("eu")
	w.inspect("eu", func(n *escrow.Node) { backupSeq = n.Seq() })
	for i := 0; i < 3; i++ {
		w.mustHoldBorrowing("eu", "A")
	}
	w.waitConverged("A", 5*time.Second)
	var lostSeq uint64
	w.inspect("eu", func(n *escrow.Node) { lostSeq = n.Seq() })

	// Restore the backup over the directory and restart.
	w.stop("eu")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	copyDir(t, backup, dir)
	restarted := time.Now()
	eu := w.start("eu")
	testutil.WaitFor(t, 5*time.Second, func() bool { return eu.reg.Fence().Fenced },
		func() string { return "the restored eu never fenced itself" })
	t.Logf("restored eu (seq %d, had reached %d) fenced %v after restart (digest interval 100ms)",
		backupSeq, lostSeq, time.Since(restarted).Round(time.Millisecond))
	f := eu.reg.Fence()
	if f.Probation || f.Voices != "ap,us" || f.PeerSeen != lostSeq || f.OwnSeq != backupSeq {
		t.Fatalf("fence %+v, want ap and us at %d, own %d", f, lostSeq, backupSeq)
	}
	// It counts the 3 units of the lost holds as available, and refuses.
	testutil.WaitFor(t, 5*time.Second, func() bool {
		var a uint64
		w.inspect("eu", func(n *escrow.Node) { a = n.Available("A") })
		return a == 3
	}, func() string { return "eu never learned us's loans" })
	if r := w.mustDo("eu", hold("A", 1)); r.Err == nil || r.Err.Code != escrow.CodeFenced {
		t.Fatalf("hold at the restored eu: %+v", r)
	}
}

// TestRegionProbationDefaults: with the default settings (digests every
// second, fresh_probation 1.5 digest intervals) three regions started
// empty together, as `holdfast demo` does, end their probations because
// their peers confirm that they are new (about 1.5s here; the time is
// logged, not asserted).
func TestRegionProbationDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a default probation (about 1.5s)")
	}
	w := newMRWorld(t)
	w.configure = func(c *region.Config) {
		c.NATSURL = "nats://127.0.0.1" // has peers: the default probation applies
		c.Escrow.DigestInterval, c.Escrow.RepairTimeout = 0, 0
	}
	start := time.Now()
	for _, n := range []string{"eu", "us", "ap"} {
		w.start(n)
		if f := w.sites[n].reg.Fence(); !f.Probation {
			t.Fatalf("%s not on probation: %+v", n, f)
		}
	}
	// The deadline is a third of fresh_probation_max (30s): a probation
	// over by then ended because the peers confirmed, not by timing out.
	took := w.waitProbationOver(10 * time.Second)
	t.Logf("three fresh regions with default settings: probation over %v after the first start (%v after the last)",
		time.Since(start).Round(time.Millisecond), took.Round(time.Millisecond))
}
