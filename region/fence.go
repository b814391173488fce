package region

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/escrow"
)

// The runtime side of the store fence (see escrow/fence.go): a region whose
// store went back in time refuses every write; a region whose store starts
// empty while it has peers starts on probation. The runtime
//   - puts a fresh node on probation at Open (when the region has peers),
//   - keeps the fence over node rebuilds (storage failures) and restarts (a
//     marker file in the data directory, so that a supervisor restarting a
//     fenced region in a loop does not reopen a window for granting),
//   - reports it: a loud log line once, gauges, 503 fenced with Retry-After,
//     and /readyz not ready,
//   - lets writes that arrive during a probation wait for its end (within
//     their deadline) rather than fail: a probation is part of starting.

// FenceMarkerFile is the file in the data directory that keeps a region
// fenced across restarts. Delete it only as docs/operations.md says.
const FenceMarkerFile = "FENCED"

// maxFenceMarkerBytes bounds what Open reads of a marker file.
const maxFenceMarkerBytes = 64 << 10

// DefaultFreshProbationMax is Config.FreshProbationMax when it is zero.
const DefaultFreshProbationMax = 30 * time.Second

type regionFence struct {
	status    atomic.Pointer[escrow.FenceStatus] // last seen by the stepper
	fenced    atomic.Bool                        // sticky fence
	probation atomic.Bool
	// unconfirmed is 1 when the probation ended at fresh_probation_max
	// without any peer's confirmation (the residual risk of a wiped
	// region started while cut off from every peer).
	unconfirmed atomic.Bool
	// probationDone is closed when the probation ends or the region is fenced.
	probationDone chan struct{}

	// Owned by the stepper (and Open before it starts).
	started bool                // the first node was fenced or armed
	sticky  *escrow.FenceStatus // re-imposed on every rebuilt node
}

// Fence returns the region's fence status as of the last tick.
func (r *Region) Fence() escrow.FenceStatus {
	if st := r.fence.status.Load(); st != nil {
		return *st
	}
	return escrow.FenceStatus{}
}

// probationWaits returns the minimum and maximum probation of a fresh
// store, and whether the region has one at all: only when it has peers
// (nats_url set, or fresh_probation set above zero for an in-process
// transport), fresh_probation is not negative and digests are on.
func (c *Config) probationWaits() (minWait, maxWait time.Duration, on bool) {
	if c.FreshProbation < 0 || (c.NATSURL == "" && c.FreshProbation == 0) || c.Escrow.DigestInterval < 0 {
		// (Without digests no peer can say that it never saw our rows.)
		return 0, 0, false
	}
	minWait = c.FreshProbation
	if minWait == 0 {
		// One and a half digest intervals: the digest of every live peer
		// arrives in that time, so a peer that saw our rows is heard before
		// the probation can end on another's clean report.
		d := c.Escrow.DigestInterval
		if d <= 0 {
			d = time.Second
		}
		minWait = d + d/2
	}
	maxWait = c.FreshProbationMax
	if maxWait == 0 {
		maxWait = DefaultFreshProbationMax
	}
	if maxWait > 0 {
		// (Negative: no limit, the node waits for its peers forever.)
		maxWait = max(maxWait, minWait)
	}
	return minWait, maxWait, true
}

// fenceNode applies the fence to a node just loaded from storage: the
// sticky fence (from a marker, or from a node this one replaces), or a
// probation for the region's first node if its store is empty, or again
// for a rebuilt node while the probation was not over.
func (r *Region) fenceNode(n *escrow.Node) {
	f := &r.fence
	first := !f.started
	if first {
		f.started = true
		f.probationDone = make(chan struct{})
		f.sticky = r.readFenceMarker()
	}
	switch {
	case f.sticky != nil:
		n.ImposeFence(*f.sticky)
	case first || f.probation.Load():
		if minWait, maxWait, on := r.cfg.probationWaits(); on && n.BeginProbation(minWait, maxWait) {
			if first {
				r.log.Warn("store is empty: region starts on probation and refuses writes until its peers "+
					"confirm that they never saw its rows (see docs/operations.md, \"A wiped or lost region\")",
					"min_wait", minWait, "max_wait", maxWait)
			}
		}
		if minWait, maxWait, on := r.cfg.probationWaits(); on && r.cfg.RestartProbation && n.BeginRestartProbation(minWait, maxWait) {
			if first {
				r.log.Warn("restart probation: region refuses writes until its peers confirm that they never saw its "+
					"rows beyond its store's sequence", "seq", n.Seq(), "min_wait", minWait, "max_wait", maxWait)
			}
		}
	}
	r.syncFence(n)
}

// syncFence publishes the node's fence status and reacts to changes: it
// runs on the stepper after every tick.
func (r *Region) syncFence(n *escrow.Node) {
	f := &r.fence
	r.syncTrust(n)
	st := n.Fence()
	prev := r.fence.status.Load()
	if prev != nil && *prev == st {
		return
	}
	f.status.Store(&st)
	switch {
	case st.Fenced && st.Probation:
		f.probation.Store(true)
	case st.Fenced:
		// Logged once per process: a fence from the marker was logged by
		// readFenceMarker, and a rebuilt node carries the same fence.
		if !f.fenced.Swap(true) && f.sticky == nil {
			r.log.Error("REGION FENCED: its store went back in time (wiped, or restored from an old backup); "+
				"it refuses every write (503 fenced) until it is replaced as docs/operations.md says",
				"peer", st.Peer, "peer_seen_seq", st.PeerSeen, "own_seq", st.OwnSeq, "detail", st.Detail)
			c := st
			f.sticky = &c
			r.writeFenceMarker(&c)
		}
		r.endProbationWait()
	default:
		if f.probation.Load() {
			r.endProbationWait()
			if st.Unconfirmed {
				r.fence.unconfirmed.Store(true)
				r.log.Warn("probation over without the peers' confirmation: region accepts writes", "detail", st.Detail)
			} else {
				r.log.Info("probation over: region accepts writes", "detail", st.Detail)
			}
		}
	}
}

func (r *Region) endProbationWait() {
	f := &r.fence
	f.probation.Store(false)
	select {
	case <-f.probationDone:
	default:
		close(f.probationDone)
	}
}

// awaitProbation lets a write that arrives during the probation wait for
// its end, for at most three quarters of what is left of its timeout or
// context deadline, and returns the timeout left for the request itself.
// Reads never wait. A region that is still on probation after the wait
// answers the write with CodeFenced.
func (r *Region) awaitProbation(ctx context.Context, kind escrow.CommandKind, timeout time.Duration) time.Duration {
	if !r.fence.probation.Load() || kind == escrow.CmdGet || kind == escrow.CmdStock {
		return timeout
	}
	budget := r.cfg.RequestTimeout
	if timeout > 0 {
		budget = timeout
	}
	if d, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(d))
	}
	budget = budget * 3 / 4
	if budget <= 0 {
		return timeout
	}
	start := time.Now()
	t := time.NewTimer(budget)
	defer t.Stop()
	select {
	case <-r.fence.probationDone:
	case <-t.C:
	case <-ctx.Done():
	case <-r.loopDone:
	}
	if timeout > 0 {
		return max(timeout-time.Since(start), time.Millisecond)
	}
	return timeout
}

// fenceMarkerPath is the marker's path in the store's filesystem
// (markerFS), "" for a region without a data directory of its own.
func (r *Region) fenceMarkerPath() string {
	if !r.ownStore || r.cfg.DataDir == "" {
		return ""
	}
	return r.markerFS().PathJoin(r.cfg.DataDir, FenceMarkerFile)
}

// markerFS is the filesystem the store lives on (Config.FS: the
// simulator's crashable one, whose crashes keep only what was synced), or
// the real one: the marker lives and dies with the data directory.
func (r *Region) markerFS() vfs.FS {
	if r.cfg.FS != nil {
		return r.cfg.FS
	}
	return vfs.Default
}

// readFenceMarker returns the fence recorded in the data directory, or nil.
// A marker that cannot be read still fences: the region does not know why,
// but it knows it was fenced.
func (r *Region) readFenceMarker() *escrow.FenceStatus {
	path := r.fenceMarkerPath()
	if path == "" {
		return nil
	}
	fs := r.markerFS()
	fi, err := fs.Stat(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			r.log.Error("cannot read the fence marker: staying fenced", "path", path, "err", err)
			return &escrow.FenceStatus{Fenced: true, Detail: "region " + r.name + " is fenced: its fence marker " +
				path + " cannot be read (" + err.Error() + "); see docs/operations.md, \"A wiped or lost region\""}
		}
		return nil
	}
	st := escrow.FenceStatus{}
	b, err := readFileFS(fs, path)
	if err == nil && fi.Size() > maxFenceMarkerBytes {
		err = fmt.Errorf("%d bytes, over %d", fi.Size(), maxFenceMarkerBytes)
	}
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil || st.Detail == "" {
		st = escrow.FenceStatus{Detail: fmt.Sprintf("region %s is fenced: its fence marker %s is unreadable (%v); "+
			"see docs/operations.md, \"A wiped or lost region\"", r.name, path, err)}
	}
	st.Fenced, st.Probation = true, false
	r.log.Error("REGION FENCED by the marker in its data directory: it refuses every write (503 fenced)",
		"path", path, "peer", st.Peer, "peer_seen_seq", st.PeerSeen, "own_seq", st.OwnSeq, "detail", st.Detail)
	return &st
}

// writeFenceMarker records st in the data directory, synced, so that a
// restart keeps the region fenced. A failure is logged: the fence holds for
// this process anyway.
func (r *Region) writeFenceMarker(st *escrow.FenceStatus) {
	path := r.fenceMarkerPath()
	if path == "" {
		return
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err == nil {
		err = writeFileSynced(r.markerFS(), path, append(b, '\n'))
	}
	if err != nil {
		r.log.Error("cannot write the fence marker: a restart would forget the fence until a peer's next digest",
			"path", path, "err", err)
	}
}

// writeFileSynced writes b to path on fs through a synced temporary file
// renamed into place, then syncs the directory: after a crash the file is
// whole or absent.
func writeFileSynced(fs vfs.FS, path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := fs.Rename(tmp, path); err != nil {
		return err
	}
	d, err := fs.OpenDir(fs.PathDir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readFileFS reads at most maxFenceMarkerBytes+1 bytes of path on fs.
func readFileFS(fs vfs.FS, path string) ([]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxFenceMarkerBytes+1))
}

// fenceCollectors are the fence's metrics.
func (r *Region) fenceCollectors() []prometheus.Collector {
	gauge := func(b *atomic.Bool) func() float64 {
		return func() float64 {
			if b.Load() {
				return 1
			}
			return 0
		}
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "holdfast_region_fenced",
			Help: "1 while the region refuses every write because its store went back in time (see docs/operations.md).",
		}, gauge(&r.fence.fenced)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "holdfast_region_probation",
			Help: "1 while a region whose store started empty waits for its peers to confirm it is new.",
		}, gauge(&r.fence.probation)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "holdfast_region_probation_unconfirmed",
			Help: "1 when the probation of a region whose store started empty ended at fresh_probation_max " +
				"without any peer confirming that it is new (see docs/operations.md).",
		}, gauge(&r.fence.unconfirmed)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "holdfast_fence_refused_total", Help: "Commands refused because the region was fenced or on probation.",
		}, func() float64 { return float64(r.Stats().FenceRefused) }),
	}
}
