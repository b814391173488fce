package region

// The Stepper's filesystem: a vfs.FS whose write-ahead-log syncs are held
// while a batch is committed and carried out by SyncDurable, so that what a
// crash keeps depends only on the order of the stages a driver chose, not
// on when pebble's WAL goroutine ran.

import (
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

type syncGate struct {
	vfs.FS
	mu      sync.Mutex
	hold    bool
	pending []vfs.File // WAL files whose sync was held, in order
}

func (g *syncGate) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return &gatedFile{File: f, g: g}, nil
}

func (g *syncGate) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := g.FS.Create(name, c)
	return g.wrap(name, f, err)
}

func (g *syncGate) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := g.FS.ReuseForWrite(oldname, newname, c)
	return g.wrap(newname, f, err)
}

func (g *syncGate) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := g.FS.OpenReadWrite(name, c, opts...)
	return g.wrap(name, f, err)
}

// setHold holds (true) or lets through (false) the WAL's syncs.
func (g *syncGate) setHold(on bool) {
	g.mu.Lock()
	g.hold = on
	g.mu.Unlock()
}

// held reports whether a sync is waiting for flush.
func (g *syncGate) held() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.pending) > 0
}

// flush carries out the held syncs.
func (g *syncGate) flush() error {
	g.mu.Lock()
	files := g.pending
	g.pending = nil
	g.mu.Unlock()
	var first error
	for _, f := range files {
		if err := f.Sync(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

type gatedFile struct {
	vfs.File
	g *syncGate
}

// defer reports whether the sync is held (and records it).
func (f *gatedFile) deferSync() bool {
	g := f.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.hold {
		return false
	}
	for _, p := range g.pending {
		if p == f.File {
			return true
		}
	}
	g.pending = append(g.pending, f.File)
	return true
}

func (f *gatedFile) Sync() error {
	if f.deferSync() {
		return nil
	}
	return f.File.Sync()
}

func (f *gatedFile) SyncData() error {
	if f.deferSync() {
		return nil
	}
	return f.File.SyncData()
}

func (f *gatedFile) SyncTo(length int64) (bool, error) {
	if f.deferSync() {
		return true, nil
	}
	return f.File.SyncTo(length)
}

// Close carries out a held sync of the file first: pebble closes a WAL it
// rotated away from only after syncing it.
func (f *gatedFile) Close() error {
	g := f.g
	g.mu.Lock()
	held := false
	for i, p := range g.pending {
		if p == f.File {
			g.pending = append(g.pending[:i], g.pending[i+1:]...)
			held = true
			break
		}
	}
	g.mu.Unlock()
	if held {
		if err := f.File.Sync(); err != nil {
			_ = f.File.Close()
			return err
		}
	}
	return f.File.Close()
}
