package floor

import (
	"os"
	"slices"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFdatasyncFloor: write 512 bytes (a small WAL record) and
// fdatasync it, as the group commit of one lone caller does. ns/op (mean)
// and p50-us are the floor of a durable hold's latency on this disk.
//
//   - file=recycled: at the next offset of an already written and synced
//     16 MiB file, as in a recycled WAL file (Pebble reuses old WAL files):
//     the append changes no file metadata.
//   - file=growing: appended at the end of a growing file, as in a fresh WAL
//     file or an append-only file: every fdatasync also commits the new size
//     to the file system's journal.
func BenchmarkFdatasyncFloor(b *testing.B) {
	for _, mode := range []string{"recycled", "growing"} {
		b.Run("file="+mode, func(b *testing.B) { fdatasyncs(b, mode == "recycled") })
	}
}

func fdatasyncs(b *testing.B, recycled bool) {
	f, err := os.CreateTemp(b.TempDir(), "wal")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const size = 16 << 20
	if recycled {
		if _, err := f.Write(make([]byte, size)); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	rec := make([]byte, 512)
	off := int64(0)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if off+int64(len(rec)) > size {
			off = 0
			if !recycled {
				if err := f.Truncate(0); err != nil {
					b.Fatal(err)
				}
			}
		}
		t0 := time.Now()
		if _, err := f.WriteAt(rec, off); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		off += int64(len(rec))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
}
