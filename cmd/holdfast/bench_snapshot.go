package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/gossip"
	"github.com/holdfast-io/holdfast/loadgen"
	"github.com/holdfast-io/holdfast/region"
)

// holdfast bench-snapshot (issue 23): how long a new region takes to receive
// a peer's catalogue. An embedded NATS server and the owner region "eu" run
// in this process; eu's catalogue is loaded through its apply loop (as
// holdfast bench --target engine does) before it joins NATS, then a new
// region "us" starts as a child process (holdfast region, empty data
// directory) and the time until its log says "snapshot from peer done" is
// measured, with the child's peak RSS and CPU, its snapshot metrics and the
// gossip bytes it received.

func init() { commands = append(commands, newBenchSnapshotCmd) }

type benchSnapOpts struct {
	skus        int
	dataDir     string
	restock     bool
	skuCache    int
	answerBytes float64
	repairRate  float64
	repairRows  int
	timeout     time.Duration
}

func newBenchSnapshotCmd() *cobra.Command {
	var o benchSnapOpts
	cmd := &cobra.Command{
		Use:   "bench-snapshot",
		Short: "Time a new region's snapshot of a peer's catalogue (two regions on embedded NATS)",
		Example: `  holdfast bench-snapshot --skus 1000000
  holdfast bench-snapshot --skus 10000000 --data-dir /tmp/snap10m       # keep the owner's store
  holdfast bench-snapshot --skus 10000000 --data-dir /tmp/snap10m --restock=false`,
		Long: `Loads --skus SKUs into an owner region (eu, in this process, --sku-cache SKUs
resident), joins it to an embedded NATS server, starts a new region (us) as a
child process with an empty data directory and the same --sku-cache, and
waits until us has received eu's whole catalogue (its "snapshot from peer
done" log line). Prints one line: the snapshot's seconds (from the child's
start, and from its first part), rows, encoded row bytes, gossip bytes
received as snapshot parts, chunks, the child's peak RSS (VmHWM) and CPU, and
the owner's CPU meanwhile.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchSnapshot(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.skus, "skus", 1_000_000, "SKUs of the owner's catalogue")
	f.StringVar(&o.dataDir, "data-dir", "", "the owner's data directory (default: a temporary one, removed at the end)")
	f.BoolVar(&o.restock, "restock", true, "load the catalogue (false: --data-dir already holds it)")
	f.IntVar(&o.skuCache, "sku-cache", 100_000, "SKUs each region keeps in memory at most (0: all)")
	f.Float64Var(&o.answerBytes, "repair-answer-bytes-per-s", 0, "the owner's repair answer budget per peer (0: the default, 4 MiB/s)")
	f.Float64Var(&o.repairRate, "repair-rate", 0, "repair requests the owner serves per peer per second (0: the default, 2)")
	f.IntVar(&o.repairRows, "max-repair-rows", 0, "own rows per answer (0: the default, 65,536)")
	f.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long")
	return cmd
}

func runBenchSnapshot(ctx context.Context, o benchSnapOpts, stdout, stderr io.Writer) error {
	if o.skus < 1 || o.skus > loadgen.MaxSKUs {
		return fmt.Errorf("--skus must be 1..%d", loadgen.MaxSKUs)
	}
	if o.timeout <= 0 {
		return errors.New("--timeout must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	dir := o.dataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "holdfast-snapbench-eu-")
		if err != nil {
			return fmt.Errorf("bench-snapshot: temp dir: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rcfg := region.Config{Name: "eu", Cluster: "snapbench", DataDir: dir, Logger: logger, SKUCache: o.skuCache,
		Events:     region.EventsConfig{Disabled: true},
		PeerLimits: region.PeerLimits{RepairAnswerBytesPerSec: o.answerBytes, RepairRate: o.repairRate}}
	rcfg.Escrow.MaxRepairRows = o.repairRows
	if o.restock {
		// Loaded on its own: the load's row broadcasts would go to NATS.
		r, err := region.Open(ctx, rcfg)
		if err != nil {
			return fmt.Errorf("bench-snapshot: open the owner: %w", err)
		}
		t0 := time.Now()
		err = engineLoad(ctx, r, o.skus, func(int) uint64 { return 10 }, func(done int) {
			logf("bench-snapshot: loaded %d of %d SKUs in %v", done, o.skus, time.Since(t0).Round(time.Millisecond))
		})
		if err == nil {
			err = settle(ctx, r, 60*time.Second)
		}
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		logf("bench-snapshot: loaded %d SKUs in %v", o.skus, time.Since(t0).Round(time.Millisecond))
	}
	srv, url, err := gossip.RunEmbedded(gossip.EmbeddedOptions{Host: "127.0.0.1", Port: -1, Logger: logger})
	if err != nil {
		return fmt.Errorf("bench-snapshot: NATS: %w", err)
	}
	defer srv.Shutdown()
	rcfg.NATSURL = url
	owner, err := region.Open(ctx, rcfg)
	if err != nil {
		return fmt.Errorf("bench-snapshot: reopen the owner: %w", err)
	}
	defer owner.Close()
	tr, err := connectPeers(ctx, rcfg, owner)
	if err != nil {
		return fmt.Errorf("bench-snapshot: join the owner to NATS: %w", err)
	}
	defer tr.Close()

	usDir, err := os.MkdirTemp("", "holdfast-snapbench-us-")
	if err != nil {
		return fmt.Errorf("bench-snapshot: temp dir: %w", err)
	}
	defer os.RemoveAll(usDir)
	addr, err := freeLoopback()
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench-snapshot: %w", err)
	}
	// A new region learns at most max_peer_skus SKUs from peers (1 M by
	// default): the whole catalogue must fit.
	conf := filepath.Join(usDir, "us.yaml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "escrow:\n  max_peer_skus: %d\n", max(o.skus, escrow.DefaultMaxPeerSKUs)), 0o600); err != nil {
		return fmt.Errorf("bench-snapshot: %w", err)
	}
	child := exec.CommandContext(ctx, exe, "region", "--config", conf, "--name", "us", "--cluster", "snapbench", "--nats-url", url,
		"--data-dir", filepath.Join(usDir, "data"), "--http-addr", addr, "--sku-cache", strconv.Itoa(o.skuCache),
		"--log-level", "info")
	child.Stdout = io.Discard
	pipe, err := child.StderrPipe()
	if err != nil {
		return fmt.Errorf("bench-snapshot: %w", err)
	}
	c0 := loadgen.ProcessCPU()
	t0 := time.Now()
	if err := child.Start(); err != nil {
		return fmt.Errorf("bench-snapshot: start the new region: %w", err)
	}
	defer func() {
		_ = child.Process.Signal(os.Interrupt)
		_ = child.Wait()
	}()
	done := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "snapshot from peer") {
				logf("us: %s", line)
			}
			if strings.Contains(line, "snapshot from peer done") {
				select {
				case done <- line:
				default:
				}
			}
		}
	}()
	var doneLine string
	select {
	case doneLine = <-done:
	case <-ctx.Done():
		return fmt.Errorf("bench-snapshot: no snapshot done within %v", o.timeout)
	}
	elapsed := time.Since(t0)
	ownerCPU := loadgen.ProcessCPU() - c0
	peak, cpu := procPeakAndCPU(child.Process.Pid)
	metrics, err := scrape("http://" + addr + "/metrics")
	if err != nil {
		return err
	}
	field := func(k string) string {
		for _, f := range strings.Fields(doneLine) {
			if v, ok := strings.CutPrefix(f, k+"="); ok {
				return v
			}
		}
		return "?"
	}
	rows := metrics["holdfast_snapshot_rows_received_total"]
	if rows < float64(o.skus) {
		return fmt.Errorf("bench-snapshot: us received %v rows of %d", rows, o.skus)
	}
	for k, v := range metrics {
		if strings.HasPrefix(k, "holdfast_peer_rejected_total") && v > 0 {
			return fmt.Errorf("bench-snapshot: us refused peer input: %s %v", k, v)
		}
	}
	fmt.Fprintf(stdout, "skus=%d sku_cache=%d total_s=%.2f snapshot_s=%s rows=%.0f row_bytes=%.0f wire_bytes=%.0f chunks=%.0f parts_out_of_order=%.0f us_peak_rss_mb=%.0f us_cpu_s=%.2f eu_cpu_s=%.2f\n",
		o.skus, o.skuCache, elapsed.Seconds(), field("seconds"), rows, metrics["holdfast_snapshot_bytes_received_total"],
		metrics[`holdfast_gossip_bytes_in_total{region="us",type="snapshot"}`], metrics["holdfast_snapshot_chunks_received_total"],
		metrics["holdfast_snapshot_parts_out_of_order_total"], float64(peak)/(1<<20), cpu.Seconds(), ownerCPU.Seconds())
	return nil
}

func freeLoopback() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench-snapshot: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// procPeakAndCPU reads a process's VmHWM and user+system CPU from /proc (0
// elsewhere).
func procPeakAndCPU(pid int) (peak uint64, cpu time.Duration) {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				f := strings.Fields(v)
				if len(f) > 0 {
					kb, _ := strconv.ParseUint(f[0], 10, 64)
					peak = kb << 10
				}
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command name (which may hold spaces): utime
		// and stime are the 14th and 15th of the line.
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			f := strings.Fields(s[i+1:])
			if len(f) > 13 {
				u, _ := strconv.ParseUint(f[11], 10, 64)
				st, _ := strconv.ParseUint(f[12], 10, 64)
				cpu = time.Duration(u+st) * time.Second / 100 // USER_HZ
			}
		}
	}
	return peak, cpu
}

// scrape reads a Prometheus text page into name{labels} → value.
func scrape(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, fmt.Errorf("bench-snapshot: %w", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}
