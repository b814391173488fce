package region_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/httpapi"
	"github.com/holdfast-io/holdfast/region"
)

// crashChildEnv makes the test binary run as a region process (see TestMain).
const crashChildEnv = "HOLDFAST_REGION_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	os.Exit(m.Run())
}

// crashChild runs region "eu" on dir/data, serving HTTP on a loopback port
// that it writes to dir/addr, until it is killed.
func crashChild(dir string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := region.Open(context.Background(), region.Config{Name: "eu", DataDir: filepath.Join(dir, "data"), Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		return 3
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: listen:", err)
		return 3
	}
	tmp := filepath.Join(dir, "addr.tmp")
	if err := os.WriteFile(tmp, []byte(ln.Addr().String()), 0o600); err != nil {
		return 3
	}
	if err := os.Rename(tmp, filepath.Join(dir, "addr")); err != nil {
		return 3
	}
	srv, err := httpapi.New(r, region.Config{Name: "eu", Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: http api:", err)
		return 3
	}
	if err := srv.Serve(context.Background(), ln); err != nil {
		fmt.Fprintln(os.Stderr, "child: serve:", err)
		return 3
	}
	return 0
}

type crashChildProc struct {
	cmd    *exec.Cmd
	base   string
	stderr *bytes.Buffer
	done   chan struct{} // closed when the process has been reaped
}

func startCrashChild(t *testing.T, dir string) *crashChildProc {
	t.Helper()
	os.Remove(filepath.Join(dir, "addr"))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &crashChildProc{cmd: cmd, stderr: &stderr, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(p.kill)
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "addr"))
		if err == nil {
			p.base = "http://" + string(b)
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("child exited before serving: %v\n%s", cmd.ProcessState, stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("child did not serve within 20s\n%s", stderr.String())
		}
	}
}

// kill SIGKILLs the child and waits until it has been reaped (its store
// lock released).
func (p *crashChildProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// crashModel is what the clients were told. A hold is acknowledged once
// its create returned 201; its state is the last acknowledged transition,
// and pending the transition in flight when the process died (if any).
type crashModel struct {
	mu        sync.Mutex
	holds     map[string]*crashHold
	minted    map[string]uint64
	uncertain []crashCreate // creates in flight at a crash: retried after restart
	keys      int
}

// crashCreate is a create request sent with an Idempotency-Key.
type crashCreate struct {
	key, body string
	lines     []escrow.Line
}

type crashHold struct {
	lines   []escrow.Line
	state   escrow.HoldState
	pending escrow.HoldState // 0: none
}

var crashSKUs = []string{"A", "B", "C", "LAST"}

type crashClient struct {
	base string
	hc   *http.Client
}

func (c *crashClient) post(ctx context.Context, path, body string) (int, []byte, error) {
	return c.postKey(ctx, path, body, "")
}

func (c *crashClient) postKey(ctx context.Context, path, body, key string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, nil, err // the reply was cut: not acknowledged
	}
	return res.StatusCode, b, nil
}

// drive runs one client until ctx ends or the server goes away.
func (m *crashModel) drive(ctx context.Context, c *crashClient, rng *rand.Rand, errs chan<- error) {
	for ctx.Err() == nil {
		n := 1 + rng.IntN(2)
		var items []string
		var lines []escrow.Line
		for i := 0; i < n; i++ {
			sku := crashSKUs[rng.IntN(len(crashSKUs))]
			q := uint64(1 + rng.IntN(2))
			items = append(items, fmt.Sprintf(`{"sku":%q,"qty":%d}`, sku, q))
			lines = append(lines, escrow.Line{SKU: sku, Qty: q})
		}
		norm, _ := escrow.NormalizeLines(lines)
		m.mu.Lock()
		m.keys++
		cr := crashCreate{key: fmt.Sprintf("key-%d", m.keys), body: `{"items":[` + strings.Join(items, ",") + `],"ttl":"30m"}`, lines: norm}
		m.mu.Unlock()
		status, body, err := c.postKey(ctx, "/v1/holds", cr.body, cr.key)
		if err != nil {
			m.mu.Lock()
			m.uncertain = append(m.uncertain, cr)
			m.mu.Unlock()
			return // killed, or the run is over
		}
		if status == http.StatusConflict {
			continue
		}
		if status != http.StatusCreated {
			errs <- fmt.Errorf("create: status %d: %s", status, body)
			return
		}
		var h api.Hold
		if err := json.Unmarshal(body, &h); err != nil {
			errs <- err
			return
		}
		m.mu.Lock()
		m.holds[h.ID] = &crashHold{lines: norm, state: escrow.Held}
		m.mu.Unlock()
		var action string
		var target escrow.HoldState
		switch p := rng.IntN(10); {
		case p < 4:
			action, target = "confirm", escrow.Confirmed
		case p < 8:
			action, target = "release", escrow.Released
		default:
			continue
		}
		m.mu.Lock()
		m.holds[h.ID].pending = target
		m.mu.Unlock()
		status, body, err = c.post(ctx, "/v1/holds/"+h.ID+"/"+action, "")
		if err != nil {
			return // pending stays: either outcome is allowed
		}
		if status != http.StatusOK {
			errs <- fmt.Errorf("%s %s: status %d: %s", action, h.ID, status, body)
			return
		}
		m.mu.Lock()
		m.holds[h.ID].state, m.holds[h.ID].pending = target, 0
		m.mu.Unlock()
	}
}

// verify opens the store of the dead process and checks it against what
// was acknowledged: every acknowledged hold in its acknowledged state (or
// the transition in flight), rows equal to what the holds imply, no unit
// granted twice. It adopts the stored states as the new acknowledged ones.
func (m *crashModel) verify(t *testing.T, dir string) (holds int) {
	t.Helper()
	st, err := region.OpenStore(filepath.Join(dir, "data"), region.StoreOptions{Region: "eu", Logger: quietLogger()})
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer st.Close()
	state, err := st.Load()
	if err != nil {
		t.Fatalf("load after crash: %v", err)
	}
	stored := make(map[string]*escrow.Hold, len(state.Holds))
	for i := range state.Holds {
		stored[state.Holds[i].ID] = &state.Holds[i]
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, a := range m.holds {
		h := stored[id]
		if h == nil {
			t.Fatalf("acknowledged hold %s (%v) lost", id, a.state)
		}
		if h.State != a.state && (a.pending == 0 || h.State != a.pending) {
			t.Fatalf("hold %s is %v, acknowledged %v (in flight: %v)", id, h.State, a.state, a.pending)
		}
		a.state, a.pending = h.State, 0
	}
	type sums struct{ reserved, sold, released, live uint64 }
	per := map[string]*sums{}
	for _, h := range state.Holds {
		for _, l := range h.Lines {
			s := per[l.SKU]
			if s == nil {
				s = &sums{}
				per[l.SKU] = s
			}
			s.reserved += l.Qty
			switch h.State {
			case escrow.Confirmed:
				s.sold += l.Qty
				s.live += l.Qty
			case escrow.Held:
				s.live += l.Qty
			default:
				s.released += l.Qty
			}
		}
	}
	for _, row := range state.Rows {
		if row.Region != "eu" {
			t.Fatalf("foreign row %+v", row)
		}
		s := per[row.SKU]
		if s == nil {
			s = &sums{}
		}
		if row.Reserved != s.reserved || row.Sold != s.sold || row.Released != s.released {
			t.Fatalf("row %s = reserved %d sold %d released %d; holds imply %d %d %d",
				row.SKU, row.Reserved, row.Sold, row.Released, s.reserved, s.sold, s.released)
		}
		if row.Minted != m.minted[row.SKU] {
			t.Fatalf("row %s minted %d, acknowledged restocks %d", row.SKU, row.Minted, m.minted[row.SKU])
		}
		if s.live > row.Minted-row.Shrunk {
			t.Fatalf("sku %s: %d units held or sold of %d: granted twice", row.SKU, s.live, row.Minted)
		}
	}
	return len(state.Holds)
}

// TestCrashSafety runs the region as a real process, drives holds, confirms
// and releases from concurrent HTTP clients, SIGKILLs it at random moments
// and checks the store after every crash. HOLDFAST_CRASH_CYCLES and
// HOLDFAST_CRASH_SEED override the defaults (20 cycles, 5 with -short).
func TestCrashSafety(t *testing.T) {
	cycles := 20
	if testing.Short() {
		cycles = 5
	}
	if s := os.Getenv("HOLDFAST_CRASH_CYCLES"); s != "" {
		cycles, _ = strconv.Atoi(s)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("HOLDFAST_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (HOLDFAST_CRASH_SEED=%d to replay the schedule), %d cycles", seed, seed, cycles)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	m := &crashModel{holds: map[string]*crashHold{}, minted: map[string]uint64{}}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	defer hc.CloseIdleConnections()
	start := time.Now()
	replays := 0
	for cycle := 0; cycle < cycles; cycle++ {
		p := startCrashChild(t, dir)
		c := &crashClient{base: p.base, hc: hc}
		if cycle == 0 {
			for _, sku := range crashSKUs {
				qty := uint64(3000)
				if sku == "LAST" {
					qty = 5
				}
				status, body, err := c.post(context.Background(), "/v1/skus/"+sku+"/restock", fmt.Sprintf(`{"qty":%d}`, qty))
				if err != nil || status != 200 {
					t.Fatalf("restock: %d %s %v", status, body, err)
				}
				m.minted[sku] = qty
			}
		}
		// Acknowledged holds are readable through the restarted runtime too.
		m.mu.Lock()
		var sample []string
		for id := range m.holds {
			if len(sample) == 20 {
				break
			}
			sample = append(sample, id)
		}
		m.mu.Unlock()
		for _, id := range sample {
			res, err := hc.Get(p.base + "/v1/holds/" + id)
			if err != nil {
				t.Fatal(err)
			}
			var h api.Hold
			json.NewDecoder(res.Body).Decode(&h)
			res.Body.Close()
			m.mu.Lock()
			want := m.holds[id].state.String()
			m.mu.Unlock()
			if res.StatusCode != 200 || h.State != want {
				t.Fatalf("cycle %d: GET %s after restart: %d %q, want %q", cycle, id, res.StatusCode, h.State, want)
			}
		}
		// Creates cut by the last crash, retried with their key: a replay
		// (200) if they were stored, a new hold (201) if not, or 409.
		m.mu.Lock()
		retry := m.uncertain
		m.uncertain = nil
		m.mu.Unlock()
		for i, cr := range retry {
			status, body, err := c.postKey(context.Background(), "/v1/holds", cr.body, cr.key)
			if err != nil || (status != 200 && status != 201 && status != 409) {
				t.Fatalf("cycle %d: retry of %s: %d %s %v", cycle, cr.key, status, body, err)
			}
			if status == 200 || status == 201 {
				var h api.Hold
				json.Unmarshal(body, &h)
				m.mu.Lock()
				if a := m.holds[h.ID]; a != nil {
					t.Fatalf("cycle %d: retry of %s returned hold %s of another request", cycle, cr.key, h.ID)
				}
				m.holds[h.ID] = &crashHold{lines: cr.lines, state: escrow.Held}
				m.mu.Unlock()
				if status == 200 {
					replays++
				}
				if i == 0 {
					// The same key with another body is refused.
					status, body, _ := c.postKey(context.Background(), "/v1/holds", `{"items":[{"sku":"A","qty":3}],"ttl":"1m"}`, cr.key)
					if status != http.StatusUnprocessableEntity {
						t.Fatalf("cycle %d: key reuse with another body: %d %s", cycle, status, body)
					}
				}
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		errs := make(chan error, 16)
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			crng := rand.New(rand.NewPCG(rng.Uint64(), uint64(i)))
			go func() { defer wg.Done(); m.drive(ctx, c, crng, errs) }()
		}
		time.Sleep(time.Duration(30+rng.IntN(250)) * time.Millisecond) // the random moment of the crash
		p.kill()
		cancel()
		wg.Wait()
		select {
		case err := <-errs:
			t.Fatalf("cycle %d (seed %d): %v\nchild stderr:\n%s", cycle, seed, err, p.stderr.String())
		default:
		}
		n := m.verify(t, dir)
		t.Logf("cycle %d: %d holds stored, %d acknowledged", cycle, n, len(m.holds))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.holds) == 0 {
		t.Fatal("no hold was acknowledged: the test exercised nothing")
	}
	t.Logf("%d crash cycles, %d acknowledged holds, %d creates replayed by key after a crash, %v",
		cycles, len(m.holds), replays, time.Since(start).Round(time.Millisecond))
}
