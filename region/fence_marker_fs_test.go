package region

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestFenceMarkerOnStoreFS: the fence marker is written on the store's own
// filesystem (Config.FS, as the simulator's crashable one), synced with its
// directory, so a crash right after keeps it whole: a restarted region
// reads it back. (Without the directory's sync the rename is lost and so
// is the marker: the test fails.)
func TestFenceMarkerOnStoreFS(t *testing.T) {
	mem := vfs.NewCrashableMem()
	if err := mem.MkdirAll("db", 0o755); err != nil {
		t.Fatal(err)
	}
	// The data directory itself exists durably (the store created it).
	root, err := mem.OpenDir("")
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sync(); err != nil {
		t.Fatal(err)
	}
	root.Close()
	path := mem.PathJoin("db", FenceMarkerFile)
	want := `{"fenced":true}` + "\n"
	if err := writeFileSynced(mem, path, []byte(want)); err != nil {
		t.Fatal(err)
	}
	crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	b, err := readFileFS(crashed, path)
	if err != nil {
		t.Fatalf("marker after a crash: %v", err)
	}
	if string(b) != want {
		t.Fatalf("marker after a crash: %q, want %q", b, want)
	}
	if _, err := crashed.Stat(path + ".tmp"); err == nil {
		t.Fatal("the temporary file survived the rename")
	}
	r := &Region{cfg: Config{DataDir: "db", FS: crashed}, ownStore: true}
	if got := r.fenceMarkerPath(); got != path {
		t.Fatalf("marker path %q, want %q", got, path)
	}
}
