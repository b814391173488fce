package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSimHeapProfile: --heap-profile writes one heap profile (gzip) per
// soak sample, named by seed and simulated minute, and needs --soak.
func TestSimHeapProfile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "prof")
	if _, err := run(t, "sim", "--regions", "2", "--heap-profile", dir); err == nil {
		t.Fatal("--heap-profile without --soak accepted")
	}
	mustRun(t, "sim", "--soak", "20m", "--regions", "2", "--heap-profile", dir)
	for _, m := range []string{"0005", "0010", "0015", "0020"} {
		b, err := os.ReadFile(filepath.Join(dir, "heap-seed1-min"+m+".pb.gz"))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 100 || b[0] != 0x1f || b[1] != 0x8b {
			t.Fatalf("minute %s: %d bytes, not a gzipped profile", m, len(b))
		}
	}
	// One more sample comes after the last shopper, when the run drains.
	if fs, _ := os.ReadDir(dir); len(fs) != 5 {
		t.Fatalf("%d files in %s, want 5 (one per sample)", len(fs), dir)
	}
}
