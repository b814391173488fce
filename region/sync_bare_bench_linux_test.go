package region

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// BenchmarkBareSync is the floor under a lone caller's latency: one small
// synced write at a time, through pebble (db.Apply with pebble.Sync: the
// commit pipeline hands the WAL write and its fdatasync to pebble's flush
// loop goroutine and waits for it) and straight to a file (Write then
// fdatasync on the caller's goroutine), in the same directory. The
// difference is what pebble's own hand-off costs; "own" is the store's own
// log (store_wal.go), which has none. The disk is noisy (a
// mean is dominated by rare slow fsyncs): it reports the median and p90.
func BenchmarkBareSync(b *testing.B) {
	val := make([]byte, 100)
	b.Run("pebble", func(b *testing.B) {
		db, err := pebble.Open(b.TempDir(), &pebble.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		key := []byte("hold/0000000000")
		var d []time.Duration
		for i := 0; b.Loop(); i++ {
			key[len(key)-1] = byte('0' + i%10)
			t := time.Now()
			if err := db.Set(key, val, pebble.Sync); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(t))
		}
		reportQuantiles(b, d)
	})
	b.Run("own", func(b *testing.B) {
		// The store's own log (wal: own): append, memtable insert, then
		// write and fdatasync on the caller's goroutine.
		dir := b.TempDir()
		flushes := &walFlushes{}
		db, err := pebble.Open(dir, &pebble.Options{DisableWAL: true, EventListener: &pebble.EventListener{FlushEnd: flushes.flushEnd}})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		wdir := filepath.Join(dir, walDirName)
		if err := os.Mkdir(wdir, 0o755); err != nil {
			b.Fatal(err)
		}
		w, err := openOwnWAL(vfs.Default, wdir, db, nil, 0, walConfig{log: slog.Default(), onFatal: func(error) {},
			fileBytes: walFileBytesDef, flushBytes: walForceFlushBytes(walFileBytesDef), flushes: flushes})
		if err != nil {
			b.Fatal(err)
		}
		defer w.close()
		apply := func(bt *pebble.Batch, _ uint64, _ rowSpan) (*pebble.Batch, error) {
			return bt, db.Apply(bt, pebble.NoSync)
		}
		key := []byte("hold/0000000000")
		var d []time.Duration
		for i := 0; b.Loop(); i++ {
			key[len(key)-1] = byte('0' + i%10)
			t := time.Now()
			bt := db.NewBatch()
			_ = bt.Set(key, val, nil)
			pos, _, err := w.append(bt, apply, false, rowSpan{})
			if err == nil {
				err = w.waitDurable(pos)
			}
			if err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(t))
			_ = bt.Close()
		}
		reportQuantiles(b, d)
	})
	b.Run("fdatasync", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "wal"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		var d []time.Duration
		for b.Loop() {
			t := time.Now()
			if _, err := f.Write(val); err != nil {
				b.Fatal(err)
			}
			if err := syscall.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(t))
		}
		reportQuantiles(b, d)
	})
}

func reportQuantiles(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	if len(d) == 0 {
		return
	}
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50_us")
	b.ReportMetric(float64(d[len(d)*9/10].Microseconds()), "p90_us")
}
