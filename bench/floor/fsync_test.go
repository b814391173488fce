package floor

import (
	"os"
	"slices"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFdatasyncFloor: write 512 bytes (a small WAL record) at the
// next offset of an already written and synced 16 MiB file and fdatasync
// it, as a WAL group commit of one lone caller does (Pebble recycles its
// WAL files, so the append changes no file metadata: written blocks, size
// unchanged). ns/op is the floor of a durable hold's latency on this disk.
// (A fallocated but never written file is much slower: every first write
// of a block converts an unwritten extent, a journal commit.)
func BenchmarkFdatasyncFloor(b *testing.B) {
	f, err := os.CreateTemp(b.TempDir(), "wal")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const size = 16 << 20
	if _, err := f.Write(make([]byte, size)); err != nil {
		b.Fatal(err)
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
