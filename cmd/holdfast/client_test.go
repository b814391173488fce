package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/httpapi"
	"github.com/holdfast-io/holdfast/region"
)

// TestMain lets a test re-execute this test binary as the holdfast command,
// to check the real exit status and stderr of a failing client command.
func TestMain(m *testing.M) {
	if os.Getenv("HOLDFAST_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startRegion opens a real region (Pebble in a temp dir) and serves its API
// on a loopback httptest server.
func startRegion(t *testing.T, name, tokensFile string, locs ...escrow.Location) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := region.Config{
		Name:       name,
		DataDir:    t.TempDir(),
		TokensFile: tokensFile,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	cfg.Escrow.Locations = locs
	r, err := region.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open region: %v", err)
	}
	h, err := httpapi.New(r, region.Config{Name: name, TokensFile: tokensFile})
	if err != nil {
		t.Fatalf("http api: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		if err := r.Close(); err != nil {
			t.Errorf("close region: %v", err)
		}
	})
	return srv.URL
}

// run executes the holdfast command in-process and returns its stdout.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("holdfast %s: %v\noutput:\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

var holdIDRe = regexp.MustCompile(`^([a-z0-9_]+-[0-9a-z]{18})  (\w+)`)

func holdLine(t *testing.T, out string) (id, state string) {
	t.Helper()
	m := holdIDRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output does not start with \"<id>  <state>\":\n%s", out)
	}
	return m[1], m[2]
}

func wantContains(t *testing.T, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}

func TestClientCommandsHuman(t *testing.T) {
	t.Setenv(envURL, "")
	t.Setenv(envToken, "")
	u := startRegion(t, "eu", "")

	out := mustRun(t, "restock", "tee-red", "10", "--url", u)
	wantContains(t, out, "restocked 10 of 10 units of tee-red at eu", "tee-red at eu: available 10, held 0, sold 0")

	out = mustRun(t, "hold", "--sku", "tee-red", "--qty", "3", "--ttl", "2m", "--url", u)
	id, state := holdLine(t, out)
	if state != "held" || !strings.HasPrefix(id, "eu-") {
		t.Fatalf("hold: id %s state %s", id, state)
	}
	wantContains(t, out, "items:    tee-red×3", "expires:  ")

	out = mustRun(t, "stock", "tee-red", "--url", u)
	wantContains(t, out, "tee-red at eu: available 7, held 3, sold 0", "REGION", "eu ")

	out = mustRun(t, "get", id, "--url", u)
	if gotID, st := holdLine(t, out); gotID != id || st != "held" {
		t.Errorf("get: %s %s", gotID, st)
	}
	out = mustRun(t, "extend", id, "--ttl", "5m", "--url", u)
	if _, st := holdLine(t, out); st != "held" {
		t.Errorf("extend: state %s", st)
	}
	out = mustRun(t, "confirm", id, "--url", u)
	if _, st := holdLine(t, out); st != "confirmed" {
		t.Errorf("confirm: state %s", st)
	}
	// Confirming again is idempotent.
	out = mustRun(t, "confirm", id, "--url", u)
	if _, st := holdLine(t, out); st != "confirmed" {
		t.Errorf("second confirm: state %s", st)
	}

	// A cart, given both ways, then released.
	mustRun(t, "restock", "mug", "4", "--url", u)
	out = mustRun(t, "hold", "--item", "mug=2", "--sku", "tee-red", "--metadata", `{"cart":"c-1"}`, "--url", u)
	cart, _ := holdLine(t, out)
	wantContains(t, out, "mug×2", "tee-red×1", `metadata: {"cart":"c-1"}`)
	out = mustRun(t, "release", cart, "--url", u)
	if _, st := holdLine(t, out); st != "released" {
		t.Errorf("release: state %s", st)
	}

	// Repeated --sku/--qty pairs, in order.
	out = mustRun(t, "hold", "--sku", "mug", "--qty", "2", "--sku", "tee-red", "--qty", "1", "--url", u)
	cart, _ = holdLine(t, out)
	wantContains(t, out, "mug×2, tee-red×1")
	mustRun(t, "release", cart, "--url", u)

	out = mustRun(t, "stock", "tee-red", "--url", u)
	wantContains(t, out, "tee-red at eu: available 7, held 0, sold 3")

	// A write-off takes at most what is available and says so.
	out = mustRun(t, "write-off", "tee-red", "100", "--url", u)
	wantContains(t, out, "wrote off 7 of 100 units of tee-red at eu", "available 0, held 0, sold 3")
}

func TestClientCommandsJSON(t *testing.T) {
	t.Setenv(envToken, "")
	u := startRegion(t, "us", "")
	// The URL comes from the environment.
	t.Setenv(envURL, u)

	var st api.Stock
	out := mustRun(t, "restock", "A", "5", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("restock --json is not JSON: %v\n%s", err, out)
	}
	if st.SKU != "A" || st.Region != "us" || st.Available != 5 || st.Applied == nil || *st.Applied != 5 ||
		st.Regions["us"].Available != 5 {
		t.Errorf("restock --json: %+v", st)
	}

	var h api.Hold
	out = mustRun(t, "hold", "--sku", "A", "--qty", "2", "--json", "--idempotency-key", "k-1")
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Fatalf("hold --json is not JSON: %v\n%s", err, out)
	}
	if h.Region != "us" || h.State != "held" || len(h.Items) != 1 || !reflect.DeepEqual(h.Items[0], api.Item{SKU: "A", Qty: 2}) || time.Until(h.ExpiresAt) < 9*time.Minute {
		t.Errorf("hold --json: %+v", h)
	}

	// The same idempotency key returns the same hold, flagged in human output.
	out = mustRun(t, "hold", "--sku", "A", "--qty", "2", "--idempotency-key", "k-1")
	id, _ := holdLine(t, out)
	if id != h.ID {
		t.Errorf("idempotent retry: got hold %s, want %s", id, h.ID)
	}
	wantContains(t, out, "existing hold")

	out = mustRun(t, "stock", "A", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("stock --json: %v\n%s", err, out)
	}
	if st.Available != 3 {
		t.Errorf("stock --json: available %d, want 3", st.Available)
	}
}

func TestClientCommandsErrors(t *testing.T) {
	t.Setenv(envURL, "")
	t.Setenv(envToken, "")
	u := startRegion(t, "eu", "")
	mustRun(t, "restock", "A", "2", "--url", u)

	// Not enough stock: 409 with the problem's detail.
	out, err := run(t, "hold", "--sku", "A", "--qty", "3", "--url", u)
	if err == nil {
		t.Fatalf("hold of 3 with 2 in stock succeeded:\n%s", out)
	}
	for _, s := range []string{"409", "not enough units of A in region eu: 2 available here"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
	// With --json the problem document goes to stdout.
	out, err = run(t, "hold", "--sku", "A", "--qty", "3", "--url", u, "--json")
	if err == nil {
		t.Fatal("hold --json of 3 with 2 in stock succeeded")
	}
	var p api.Problem
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("hold --json error output is not a problem document: %v\n%s", err, out)
	}
	if !strings.HasSuffix(p.Type, "/insufficient-stock") || p.Status != 409 || p.SKU != "A" || p.Available == nil || *p.Available != 2 {
		t.Errorf("problem: %+v", p)
	}

	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"stock", "nope"}, []string{"404", "nope"}},
		{[]string{"get", "eu-0k3m1q9d2x7c4b8n5v"}, []string{"404", "no hold eu-0k3m1q9d2x7c4b8n5v"}},
		{[]string{"get", "not-a-hold-id!"}, []string{"400", "malformed hold id"}},
		// A hold of another region, and this region has no peers: 503 with Retry-After.
		{[]string{"confirm", "us-0k3m1q9d2x7c4b8n5v"}, []string{"503", "us", "retry after 1s"}},
		{[]string{"hold", "--sku", "A", "--ttl", "2h"}, []string{"400", "ttl must be between"}},
		{[]string{"restock", "A", "0"}, []string{"QTY must be a positive integer"}},
		{[]string{"hold"}, []string{"nothing to hold"}},
		{[]string{"hold", "--sku", "A", "--sku", "B", "--qty", "1"}, []string{"2 --sku but 1 --qty"}},
		{[]string{"hold", "--item", "A:2"}, []string{"want SKU=QTY"}},
		{[]string{"hold", "--sku", "A", "--metadata", "{oops"}, []string{"--metadata must be JSON"}},
		{[]string{"extend", "eu-0k3m1q9d2x7c4b8n5v"}, []string{"--ttl is required"}},
	}
	for _, c := range cases {
		out, err := run(t, append(c.args, "--url", u)...)
		if err == nil {
			t.Errorf("holdfast %s succeeded:\n%s", strings.Join(c.args, " "), out)
			continue
		}
		for _, s := range c.want {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("holdfast %s: error %q lacks %q", strings.Join(c.args, " "), err, s)
			}
		}
	}

	// Conflicts: confirm after release.
	out = mustRun(t, "hold", "--sku", "A", "--url", u)
	id, _ := holdLine(t, out)
	mustRun(t, "release", id, "--url", u)
	if _, err := run(t, "confirm", id, "--url", u); err == nil || !strings.Contains(err.Error(), "409") ||
		!strings.Contains(err.Error(), "released") {
		t.Errorf("confirm after release: %v", err)
	}

	// Nothing listens: a clear connection error.
	if _, err := run(t, "stock", "A", "--url", "http://127.0.0.1:1", "--timeout", "2s"); err == nil ||
		!strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("unreachable region: %v", err)
	}
}

// TestClientExitStatus runs the real main: a refused hold exits non-zero and
// prints the problem's detail on stderr.
func TestClientExitStatus(t *testing.T) {
	u := startRegion(t, "ap", "")
	mustRun(t, "restock", "A", "1", "--url", u)
	cmd := exec.Command(os.Args[0], "hold", "--sku", "A", "--qty", "5", "--url", u)
	cmd.Env = append(os.Environ(), "HOLDFAST_TEST_RUN_MAIN=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() == 0 {
		t.Fatalf("exit: %v (stdout %q, stderr %q)", err, stdout.String(), stderr.String())
	}
	want := "holdfast: 409 Conflict: not enough units of A in region ap: 1 available here"
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q lacks %q", stderr.String(), want)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout should be empty without --json, got %q", stdout.String())
	}
}

func TestClientAuth(t *testing.T) {
	t.Setenv(envURL, "")
	t.Setenv(envToken, "")
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	const clientTok, adminTok = "client-secret-0123456789", "admin-secret-0123456789"
	if err := os.WriteFile(tokens, []byte("tokens:\n"+
		"  - {name: shop, token: "+clientTok+", scopes: [client]}\n"+
		"  - {name: ops, token: "+adminTok+", scopes: [admin]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u := startRegion(t, "eu", tokens)

	if _, err := run(t, "stock", "A", "--url", u); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("no token: %v", err)
	}
	if _, err := run(t, "restock", "A", "3", "--url", u, "--token", clientTok); err == nil ||
		!strings.Contains(err.Error(), "403") {
		t.Errorf("client token on restock: %v", err)
	}
	mustRun(t, "restock", "A", "3", "--url", u, "--token", adminTok)
	// The token comes from the environment.
	t.Setenv(envToken, clientTok)
	out := mustRun(t, "hold", "--sku", "A", "--url", u)
	holdLine(t, out)
}

func TestVersionAndCompletion(t *testing.T) {
	out := mustRun(t, "version")
	wantContains(t, out, "holdfast "+version, "go:       go1.")
	out = mustRun(t, "version", "--json")
	var bi buildInfo
	if err := json.Unmarshal([]byte(out), &bi); err != nil || bi.Version == "" || !strings.HasPrefix(bi.GoVersion, "go") {
		t.Errorf("version --json: %v %+v", err, bi)
	}
	out = mustRun(t, "completion", "bash")
	wantContains(t, out, "bash completion", "holdfast")
}

// TestClientCommandsHaveExamples: every command of this file documents
// itself with examples in --help.
func TestClientCommandsHaveExamples(t *testing.T) {
	root := newRootCmd()
	for _, name := range []string{"hold", "get", "confirm", "release", "extend", "stock", "restock", "write-off", "version"} {
		c, _, err := root.Find([]string{name})
		if err != nil || c.Name() != name {
			t.Errorf("command %s not found: %v", name, err)
			continue
		}
		if !strings.Contains(c.Example, "holdfast "+name) {
			t.Errorf("holdfast %s: no example using it", name)
		}
	}
}

// TestDocumentedCommandsParse: every holdfast command line in the ```sh
// blocks of docs/*.md names a real command with real flags (it is run with
// --help, which parses the flags and stops).
func TestDocumentedCommandsParse(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs found: %v", err)
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fenced, inBlock := false, false
		for i, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				fenced = !fenced
				inBlock = fenced && strings.TrimSpace(line) == "```sh"
				continue
			}
			if !inBlock {
				continue
			}
			args := docCommand(line)
			if args == nil {
				continue
			}
			n++
			if _, err := run(t, append(args, "--help")...); err != nil {
				t.Errorf("%s:%d: holdfast %s: %v", filepath.Base(f), i+1, strings.Join(args, " "), err)
			}
		}
	}
	if n < 10 {
		t.Errorf("found only %d documented commands: the parser no longer matches the docs", n)
	}
}

// docCommand returns the arguments of a documented holdfast command line, or
// nil if the line is not one. It drops a "$ " prompt, VAR=value prefixes, a
// trailing comment and anything after a pipe, and splits on spaces keeping
// quoted strings together.
func docCommand(line string) []string {
	line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "$ "))
	for {
		f := strings.SplitN(line, " ", 2)
		if len(f) == 2 && strings.Contains(f[0], "=") && !strings.HasPrefix(f[0], "-") {
			line = f[1]
			continue
		}
		break
	}
	switch {
	case strings.HasPrefix(line, "holdfast "):
		line = strings.TrimPrefix(line, "holdfast ")
	case strings.HasPrefix(line, "go run ./cmd/holdfast "):
		line = strings.TrimPrefix(line, "go run ./cmd/holdfast ")
	default:
		return nil
	}
	var args []string
	var cur strings.Builder
	quote := byte(0)
	inArg := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inArg = c, true
		case c == '#' && !inArg, c == '|' && !inArg:
			i = len(line)
		case c == ' ' || c == '\t':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}
