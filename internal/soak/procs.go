package soak

// Child processes: start, kill -9, stop, and their memory and file
// descriptors read from /proc.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one named child process that may be killed and started again.
type proc struct {
	name string
	bin  string
	args []string
	log  string // stdout and stderr are appended here

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has been waited for
	starts  int
	exitErr error
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s is already running", p.name)
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	// The child dies with the soak, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	p.starts++
	done := p.done
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.exitErr = err
		if p.cmd == cmd {
			p.cmd = nil
		}
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// pid is the running process's id, 0 when it is not running.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// signal sends sig and waits (up to within) until the process is gone;
// SIGKILL follows when it is still there.
func (p *proc) signal(sig syscall.Signal, within time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(within):
	}
	_ = cmd.Process.Kill()
	select {
	case <-done:
		return fmt.Errorf("%s did not stop on %v within %v: killed", p.name, sig, within)
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s survives SIGKILL", p.name)
	}
}

// kill9 is kill -9: no chance to flush or close anything.
func (p *proc) kill9() error { return p.signal(syscall.SIGKILL, 5*time.Second) }

// stop asks the process to end (SIGTERM), then kills it.
func (p *proc) stop() error { return p.signal(syscall.SIGTERM, 10*time.Second) }

// exited reports whether the process ended on its own (not running, and
// started at least once).
func (p *proc) exited() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd == nil && p.starts > 0, p.exitErr
}

// usage is one sample of a process's resources.
type usage struct {
	rssKB  int64 // VmRSS
	anonKB int64 // RssAnon: heap and stacks; the rest is mostly the binary's pages
	fds    int
	up     bool
}

// sampleProc reads the RSS and open file descriptors of pid from /proc.
func sampleProc(pid int) usage {
	if pid == 0 {
		return usage{}
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return usage{}
	}
	u := usage{up: true}
	for _, line := range strings.Split(string(b), "\n") {
		for _, field := range []struct {
			name string
			dst  *int64
		}{{"VmRSS:", &u.rssKB}, {"RssAnon:", &u.anonKB}} {
			if v, ok := strings.CutPrefix(line, field.name); ok {
				if f := strings.Fields(v); len(f) > 0 {
					*field.dst, _ = strconv.ParseInt(f[0], 10, 64)
				}
			}
		}
	}
	if ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd")); err == nil {
		u.fds = len(ents)
	}
	return u
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitFor polls cond every 50 ms until it holds or within passes.
func waitFor(ctx context.Context, within time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v: %s", within, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// dialable reports whether something accepts TCP connections at addr.
func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

var probeClient = &http.Client{Timeout: 2 * time.Second}

// httpOK reports whether GET url answers 200.
func httpOK(url string) bool {
	resp, err := probeClient.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
