package floor

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// With FLOOR_SPLIT=1 the floor's servers run in a child process (this test
// binary again, running TestFloorServerChild), so that the server's CPU is
// measured apart from the client's. FLOOR_CHILD_WRAP prefixes the child's
// command, e.g. FLOOR_CHILD_WRAP='strace -c -f -o /tmp/srv.txt' to count
// the server's syscalls alone, and FLOOR_CHILD_CPUPROFILE=file writes the
// server's CPU profile.
//
// The child prints its address, then answers each "stats" line on its
// standard input with its CPU in ns and its committer's groups and
// requests, and stops when its standard input closes.

func serveChild(kind string) (floorServer, error) {
	var args []string
	if wrap := os.Getenv("FLOOR_CHILD_WRAP"); wrap != "" {
		args = strings.Fields(wrap)
	}
	args = append(args, os.Args[0], "-test.run=^TestFloorServerChild$")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "FLOOR_CHILD="+kind, "FLOOR_SPLIT=")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return floorServer{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return floorServer{}, err
	}
	if err := cmd.Start(); err != nil {
		return floorServer{}, fmt.Errorf("floor server child: %w", err)
	}
	out := bufio.NewReader(stdout)
	addr, err := out.ReadString('\n')
	if err != nil {
		stdin.Close()
		cmd.Wait()
		return floorServer{}, fmt.Errorf("floor server child's address: %w", err)
	}
	stats := func() serverStats {
		var s serverStats
		var ns int64
		if _, err := io.WriteString(stdin, "stats\n"); err != nil {
			panic(fmt.Sprintf("floor server child: %v", err))
		}
		line, err := out.ReadString('\n')
		if err == nil {
			_, err = fmt.Sscan(line, &ns, &s.groups, &s.items)
		}
		if err != nil {
			panic(fmt.Sprintf("floor server child's stats %q: %v", line, err))
		}
		s.cpu = time.Duration(ns)
		return s
	}
	stop := func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			fmt.Fprintf(os.Stderr, "floor server child: %v\n", err)
		}
	}
	return floorServer{addr: strings.TrimSpace(addr), stop: stop, stats: stats}, nil
}

// TestFloorServerChild is the server side of FLOOR_SPLIT=1; it does
// nothing in an ordinary test run.
func TestFloorServerChild(t *testing.T) {
	kind := os.Getenv("FLOOR_CHILD")
	if kind == "" {
		t.Skip("runs only as the floor benchmarks' server process (FLOOR_SPLIT=1)")
	}
	if path := os.Getenv("FLOOR_CHILD_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	s, err := start(kind, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop()
	fmt.Println(s.addr)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		st := s.stats()
		fmt.Printf("%d %d %d\n", cpuTime().Nanoseconds(), st.groups, st.items)
	}
}

// TestSplitServer: a server in a child process answers the floor's client
// and reports its own CPU and its committer's count.
func TestSplitServer(t *testing.T) {
	if os.Getenv("FLOOR_CHILD") != "" {
		t.Skip("inside a child server")
	}
	s, err := serveChild("gnet-handoff")
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop()
	before := s.stats()
	if err := client(s.addr, 5); err != nil {
		t.Fatal(err)
	}
	after := s.stats()
	if after.items-before.items != 5 {
		t.Errorf("child's committer answered %d requests, want 5", after.items-before.items)
	}
	if after.cpu <= 0 || after.cpu < before.cpu {
		t.Errorf("child's CPU %v then %v, want positive and not decreasing", before.cpu, after.cpu)
	}
}
