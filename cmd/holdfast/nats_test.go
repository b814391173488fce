package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/internal/testutil"
)

// proc is a holdfast subcommand running as its own process (this test
// binary re-executed as the holdfast command, see TestMain).
type proc struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
}

func startProc(t *testing.T, stdout io.Writer, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(os.Args[0], args...)}
	p.cmd.Env = append(os.Environ(), "HOLDFAST_TEST_RUN_MAIN=1")
	p.cmd.Stdout = stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%v exited with %v; stderr:\n%s", args, err, p.stderr.String())
			}
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			t.Errorf("%v did not stop on SIGTERM", args)
		}
	})
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func httpJSON(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var v map[string]any
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v)
	return resp.StatusCode, v
}

// TestThreeProcessesOneInventory is the done-when of the NATS layer, with
// real processes: "holdfast nats" and three "holdfast region" behave as
// one inventory. One unit restocked at eu is held at us (201, borrowed over
// NATS), a second hold anywhere gets 409, and every region's stock view
// agrees within seconds.
func TestThreeProcessesOneInventory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes")
	}
	pr, pw := io.Pipe()
	startProc(t, pw, "nats", "--addr", "127.0.0.1:0", "--log-level", "error")
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	natsURL := strings.TrimSpace(line)
	if !strings.HasPrefix(natsURL, "nats://127.0.0.1:") {
		t.Fatalf("holdfast nats printed %q", line)
	}
	urls := map[string]string{}
	for _, name := range []string{"eu", "us", "ap"} {
		addr := freeAddr(t)
		startProc(t, io.Discard, "region", "--name", name, "--cluster", "c", "--nats-url", natsURL,
			"--data-dir", t.TempDir(), "--http-addr", addr, "--log-level", "error")
		urls[name] = "http://" + addr
	}
	for name, u := range urls {
		testutil.WaitFor(t, 20*time.Second, func() bool { code, _ := httpJSON(t, "GET", u+"/readyz", ""); return code == 200 },
			func() string { return name + " not ready" })
	}
	if code, v := httpJSON(t, "POST", urls["eu"]+"/v1/skus/LAST/restock", `{"qty":1}`); code != 200 {
		t.Fatalf("restock at eu: %d %v", code, v)
	}
	// us learns eu's stock from eu's row delta.
	testutil.WaitFor(t, 10*time.Second, func() bool {
		code, v := httpJSON(t, "GET", urls["us"]+"/v1/skus/LAST", "")
		return code == 200 && v["global_available"] == float64(1)
	}, func() string { return "us never saw eu's unit" })
	hold := `{"items":[{"sku":"LAST","qty":1}]}`
	code, v := httpJSON(t, "POST", urls["us"]+"/v1/holds", hold)
	if code != 201 {
		t.Fatalf("hold at us: %d %v", code, v)
	}
	for _, name := range []string{"ap", "eu", "us"} {
		if code, v := httpJSON(t, "POST", urls[name]+"/v1/holds", hold); code != 409 {
			t.Fatalf("second hold at %s: %d %v", name, code, v)
		}
	}
	// Every region's view of every region agrees.
	view := func(name string) string {
		code, v := httpJSON(t, "GET", urls[name]+"/v1/skus/LAST", "")
		if code != 200 {
			return fmt.Sprintf("status %d", code)
		}
		regions, _ := v["regions"].(map[string]any)
		var b strings.Builder
		for _, r := range []string{"eu", "us"} {
			rs, _ := regions[r].(map[string]any)
			fmt.Fprintf(&b, "%s:%v/%v/%v/%v ", r, rs["available"], rs["held"], rs["sold"], rs["seq"])
		}
		fmt.Fprintf(&b, "global:%v", v["global_available"])
		return b.String()
	}
	testutil.WaitFor(t, 5*time.Second, func() bool {
		a, b, c := view("eu"), view("us"), view("ap")
		return a == b && b == c && strings.Contains(a, "us:0/1/0")
	}, func() string {
		return "regions disagree: eu " + view("eu") + " | us " + view("us") + " | ap " + view("ap")
	})
	t.Logf("all regions: %s", view("ap"))
}
