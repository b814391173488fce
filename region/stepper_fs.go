package region

// The Stepper's filesystem: a vfs.FS whose write-ahead-log syncs are held
// while a batch is committed and carried out by SyncDurable, so that what a
// crash keeps depends only on the order of the stages a driver chose, not
// on when pebble's WAL goroutine ran.

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

type syncGate struct {
	vfs.FS
	mu      sync.Mutex
	hold    bool
	pending []vfs.File // WAL files whose sync was held, in order
	// closing: WAL files of pending that pebble closed while their sync
	// was held (a rotation, during a Commit): flush syncs, then closes them.
	closing []vfs.File
	wal     *gatedFile // the WAL file written last
}

func (g *syncGate) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	gf := &gatedFile{File: f, g: g, name: name}
	g.mu.Lock()
	g.wal = gf
	g.mu.Unlock()
	return gf, nil
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

// flush carries out the held syncs, then closes the files pebble closed
// meanwhile. A file whose sync fails stays held (and open).
func (g *syncGate) flush() error {
	g.mu.Lock()
	files, closing := g.pending, g.closing
	g.pending, g.closing = nil, nil
	g.mu.Unlock()
	var first error
	var failed []vfs.File
	for _, f := range files {
		if err := f.Sync(); err != nil {
			failed = append(failed, f)
			if first == nil {
				first = err
			}
		}
	}
	var open []vfs.File
	for _, f := range closing {
		if slices.Contains(failed, f) {
			open = append(open, f)
		} else if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	g.mu.Lock()
	g.pending = append(failed, g.pending...)
	g.closing = append(open, g.closing...)
	if w := g.wal; w != nil && slices.Contains(files, w.File) && !slices.Contains(failed, w.File) {
		w.synced = w.written
	}
	g.mu.Unlock()
	return first
}

// walEnd returns the WAL file written last and its length.
func (g *syncGate) walEnd() (*gatedFile, int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.wal == nil {
		return nil, 0
	}
	return g.wal, g.wal.written
}

type gatedFile struct {
	vfs.File
	g       *syncGate
	name    string
	written int64 // bytes written (guarded by g.mu)
	synced  int64 // bytes synced (guarded by g.mu)
}

func (f *gatedFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.g.mu.Lock()
	f.written += int64(n)
	f.g.mu.Unlock()
	return n, err
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
	f.g.mu.Lock()
	w := f.written
	f.g.mu.Unlock()
	err := f.File.Sync()
	if err == nil {
		f.g.mu.Lock()
		f.synced = max(f.synced, w)
		f.g.mu.Unlock()
	}
	return err
}

func (f *gatedFile) SyncData() error {
	if f.deferSync() {
		return nil
	}
	return f.Sync()
}

func (f *gatedFile) SyncTo(length int64) (bool, error) {
	if f.deferSync() {
		return true, nil
	}
	return true, f.Sync()
}

// Close: pebble closes a WAL it rotates away from (a full memtable) right
// after syncing it, during the Commit of a later batch. While syncs are
// held that sync waits for the fsync stage like any other, and the file
// stays open until then (flush): so the batches written to it are durable
// at their fsync stage, not at a rotation. (Where pebble rotates depends on
// its memtable's memory use, which is not the same from run to run: its
// skiplist draws node heights from the process's random source; a crash
// between a rotation and the next fsync stage would otherwise keep more or
// less by chance. The old file's unsynced tail ends at a record boundary:
// recovery reads it as the log's end.) Outside a Commit a held sync of the
// file is carried out before it closes.
func (f *gatedFile) Close() error {
	g := f.g
	g.mu.Lock()
	i := slices.Index(g.pending, f.File)
	if i >= 0 && g.hold {
		g.closing = append(g.closing, f.File)
		g.mu.Unlock()
		return nil
	}
	if i >= 0 {
		g.pending = slices.Delete(g.pending, i, i+1)
	}
	g.mu.Unlock()
	if i >= 0 {
		if err := f.File.Sync(); err != nil {
			_ = f.File.Close()
			return err
		}
	}
	return f.File.Close()
}

// TearImage returns the crash image of mem (only what was synced) with the
// first keep bytes of tt's unsynced batch written back at the end of its
// WAL file: a write torn by the crash (keep < FirstEnd-Synced) or one that
// made it whole.
func TearImage(mem *vfs.MemFS, tt TornTail, keep int64) (*vfs.MemFS, error) {
	img := mem.CrashClone(vfs.CrashCloneCfg{})
	if keep <= 0 {
		return img, nil
	}
	keep = min(keep, tt.FirstEnd-tt.Synced)
	src, err := mem.Open(tt.File)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	buf := make([]byte, keep)
	if _, err := src.ReadAt(buf, tt.Synced); err != nil {
		return nil, err
	}
	dst, err := img.OpenReadWrite(tt.File, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, err
	}
	if st, err := dst.Stat(); err != nil || st.Size() != tt.Synced {
		dst.Close()
		return nil, fmt.Errorf("region: torn image: %s is not %d bytes long after the crash (%v)", tt.File, tt.Synced, err)
	}
	if _, err := dst.WriteAt(buf, tt.Synced); err != nil {
		dst.Close()
		return nil, err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return nil, err
	}
	return img, dst.Close()
}
