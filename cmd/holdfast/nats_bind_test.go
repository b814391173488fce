package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/gossip"
)

// takenPort listens on a free loopback port for the rest of the test.
func takenPort(t *testing.T) (string, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), ln.Addr().(*net.TCPAddr).Port
}

// TestNATSPortInUseFailsAtOnce: `holdfast nats` on a taken port returns
// the bind error instead of waiting out the 10s readiness timeout.
func TestNATSPortInUseFailsAtOnce(t *testing.T) {
	addr, _ := takenPort(t)
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"nats", "--addr", addr, "--log-level", "error"})
	start := time.Now()
	err := root.Execute()
	if err == nil {
		t.Fatalf("nats on taken %s started; output: %s", addr, out.String())
	}
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("want the bind error naming %s, got %v", addr, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v to fail", d)
	}
}

// TestEmbeddedRoutePortInUseFailsAtOnce: a listener the server itself
// fails to open (here the cluster port of its config file) ends the wait
// at once with the server's error.
func TestEmbeddedRoutePortInUseFailsAtOnce(t *testing.T) {
	_, port := takenPort(t)
	conf := filepath.Join(t.TempDir(), "nats.conf")
	body := fmt.Sprintf("cluster {\n  name: c\n  listen: 127.0.0.1:%d\n}\n", port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s, _, err := gossip.RunEmbedded(gossip.EmbeddedOptions{ConfigFile: conf, Host: "127.0.0.1", Port: -1})
	if err == nil {
		s.Shutdown()
		t.Fatal("server with a taken route port reported ready")
	}
	if !strings.Contains(err.Error(), "router port") || !strings.Contains(err.Error(), fmt.Sprint(port)) {
		t.Fatalf("want the route listen error, got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v to fail", d)
	}
}
