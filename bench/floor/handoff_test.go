package floor

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/panjf2000/gnet/v2"
)

// BenchmarkHandoffHTTPFloor: the floor's client against servers that hand
// every request to ONE committer goroutine, as holdfast's handlers hand a
// hold to the region's apply loop, which answers a whole group at a time.
// No store, no engine: what the hand-off itself costs in each server model.
//
//   - server=fasthttp: the handler sends the request to the committer and
//     parks on its own (pooled) channel; the committer wakes it; the
//     handler writes its response (holdfast's pattern today).
//   - server=gnet: the event loop frames the request and queues it to the
//     committer without blocking; the committer answers each connection with
//     AsyncWrite, so the loop writes (an event-loop front end with the
//     region's completion callback instead of a parked waiter).
//   - sync=fdatasync: the committer also writes 512 bytes to a small file and
//     fdatasyncs it once per group, as a durable group commit does; the
//     groups then grow as they do in holdfast. sync=none skips it.
func BenchmarkHandoffHTTPFloor(b *testing.B) {
	for _, sync := range []string{"none", "fdatasync"} {
		for _, srv := range []string{"fasthttp", "gnet"} {
			for _, conns := range []int{1, 64, 256} {
				b.Run(fmt.Sprintf("sync=%s/server=%s/conns=%d", sync, srv, conns), func(b *testing.B) {
					kind := srv + "-handoff"
					if sync == "fdatasync" {
						kind += "-fdatasync"
					}
					drive(b, serve(b, kind), conns)
				})
			}
		}
	}
}

// item is one request queued to the committer: either a parked fasthttp
// handler's waiter or a gnet connection to answer.
type item struct {
	wait *waiter
	conn gnet.Conn
}

type waiter struct{ done chan struct{} }

var waiters = sync.Pool{New: func() any { return &waiter{done: make(chan struct{}, 1)} }}

// committer is the apply loop's stand-in: it takes everything queued (a
// group), optionally makes it durable with one fdatasync, then answers the
// whole group.
type committer struct {
	in     chan item
	quit   chan struct{}
	done   chan struct{}
	wal    *os.File // nil: no fdatasync
	groups atomic.Int64
	items  atomic.Int64
}

func newCommitter(dir string, durable bool) (*committer, error) {
	c := &committer{in: make(chan item, 4096), quit: make(chan struct{}), done: make(chan struct{})}
	if durable {
		f, err := os.CreateTemp(dir, "wal")
		if err != nil {
			return nil, fmt.Errorf("committer wal: %w", err)
		}
		// A written and synced file, rewritten in place: each group's sync
		// then commits no metadata (a recycled WAL file).
		if _, err := f.Write(make([]byte, 1<<20)); err != nil {
			f.Close()
			return nil, fmt.Errorf("committer wal: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("committer wal: %w", err)
		}
		c.wal = f
	}
	go c.run()
	return c, nil
}

func (c *committer) run() {
	defer close(c.done)
	rec := make([]byte, 512)
	var off int64
	group := make([]item, 0, 4096)
	for {
		select {
		case it := <-c.in:
			group = append(group[:0], it)
		case <-c.quit:
			return
		}
	drain:
		for {
			select {
			case it := <-c.in:
				group = append(group, it)
			default:
				break drain
			}
		}
		if c.wal != nil {
			if off+int64(len(rec)) > 1<<20 {
				off = 0
			}
			if _, err := c.wal.WriteAt(rec, off); err != nil {
				panic(fmt.Sprintf("committer wal write: %v", err))
			}
			if err := syscall.Fdatasync(int(c.wal.Fd())); err != nil {
				panic(fmt.Sprintf("committer fdatasync: %v", err))
			}
			off += int64(len(rec))
		}
		// Counted before the answers go out, so that a client that has
		// its answer sees its request counted.
		c.groups.Add(1)
		c.items.Add(int64(len(group)))
		for i, it := range group {
			if it.wait != nil {
				it.wait.done <- struct{}{}
			} else {
				// The connection may be gone; its answer is then dropped.
				_ = it.conn.AsyncWrite(response, nil)
			}
			group[i] = item{}
		}
	}
}

// stop ends the committer once its server no longer queues to it.
func (c *committer) stop() {
	close(c.quit)
	<-c.done
	if c.wal != nil {
		c.wal.Close()
	}
}
