package soak

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestScrapeMem: the region memory is read from the unlabelled samples of
// a metrics page (a labelled sample of the same name is not taken), a
// region that does not answer is down, and the table says so.
func TestScrapeMem(t *testing.T) {
	page := `# HELP go_memstats_heap_inuse_bytes Number of heap bytes that are in use.
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 3.145728e+07
go_memstats_next_gc_bytes 4.194304e+07
holdfast_pebble_memtable_bytes{kind="x"} 99
holdfast_pebble_memtable_bytes 4.194304e+06
holdfast_pebble_block_cache_bytes 1.048576e+06
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, page)
	}))
	defer srv.Close()
	got := scrapeMem(srv.URL)
	want := regionMem{up: true, heapInuse: 30 << 20, nextGC: 40 << 20, memtable: 4 << 20, blockCache: 1 << 20}
	if got != want {
		t.Fatalf("scrape: %+v, want %+v", got, want)
	}
	down := srv.URL + "/nowhere"
	srv.Config.Handler = http.NotFoundHandler()
	if got := scrapeMem(down); got.up {
		t.Fatalf("a region answering 404 is up: %+v", got)
	}
	m := newMemSampler([]string{"eu", "us"}, nil)
	m.rows = []memRow{{vals: []regionMem{want, {}}}}
	var b bytes.Buffer
	m.table(&b)
	if out := b.String(); !strings.Contains(out, "30.0/40.0/4.0/1.0") || !strings.Contains(out, "down") {
		t.Fatalf("table:\n%s", out)
	}
}
