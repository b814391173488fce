package region_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"github.com/holdfast-io/holdfast/region"
)

const ndjsonCT = "application/x-ndjson"

// importFile is a generated import: its NDJSON body, the available units
// each SKU must end with when every good line is applied once, and the
// numbers of the bad lines.
type importFile struct {
	body  string
	want  map[string]uint64
	bad   []int
	lines int
}

// genImport writes n lines of restocks and write-offs over skus SKUs
// (write-offs never take more than the SKU has at that point of the file),
// with the lines in bad replaced by bad lines of several kinds.
func genImport(seed uint64, n, skus int, bad []int) importFile {
	rnd := rand.New(rand.NewPCG(seed, 19))
	f := importFile{want: map[string]uint64{}, bad: bad, lines: n}
	isBad := map[int]int{}
	for i, b := range bad {
		isBad[b] = i
	}
	var sb strings.Builder
	for line := 1; line <= n; line++ {
		sku := fmt.Sprintf("imp-%03d", rnd.IntN(skus))
		if k, ok := isBad[line]; ok {
			switch k % 5 {
			case 0:
				sb.WriteString(`{"op": "restock", "sku": ` + "\n") // malformed JSON
				continue
			case 1:
				fmt.Fprintf(&sb, `{"op":"restock","sku":%q,"qty":5}`+"\n", sku) // no key
			case 2:
				fmt.Fprintf(&sb, `{"op":"sell","sku":%q,"qty":5,"key":"x-%d"}`+"\n", sku, line)
			case 3:
				fmt.Fprintf(&sb, `{"op":"write-off","sku":"never-stocked","qty":1,"key":"x-%d"}`+"\n", line) // unknown SKU
			case 4:
				fmt.Fprintf(&sb, `{"op":"restock","sku":%q,"qty":0,"key":"x-%d"}`+"\n", sku, line)
			}
			continue
		}
		if have := f.want[sku]; have > 10 && rnd.IntN(4) == 0 {
			q := 1 + rnd.Uint64N(have/2)
			f.want[sku] -= q
			fmt.Fprintf(&sb, `{"op":"write-off","sku":%q,"qty":%d,"key":"imp-%d"}`+"\n", sku, q, line)
			continue
		}
		q := 1 + rnd.Uint64N(20)
		f.want[sku] += q
		fmt.Fprintf(&sb, `{"op":"restock","sku":%q,"qty":%d,"key":"imp-%d"}`+"\n", sku, q, line)
	}
	f.body = sb.String()
	return f
}

func postImport(t *testing.T, base, ctype, body string) (api.ImportResult, int) {
	t.Helper()
	res := call(t, base, "POST", "/v1/stock/import", ctype, body, nil)
	var out api.ImportResult
	if res.Status == http.StatusOK {
		res.JSON(t, &out)
	}
	return out, res.Status
}

// checkImported: every SKU has exactly the units of the file applied once.
func checkImported(t *testing.T, base string, f importFile) {
	t.Helper()
	for sku, want := range f.want {
		if st, _ := getStock(t, base, sku); st.Available != want {
			t.Fatalf("%s: available %d, want %d (each good line applied exactly once)", sku, st.Available, want)
		}
	}
}

func checkFailedLines(t *testing.T, res api.ImportResult, f importFile) {
	t.Helper()
	if res.Failed != len(f.bad) || len(res.Results) != len(f.bad) {
		t.Fatalf("failed %d, results %d, want the %d bad lines %v", res.Failed, len(res.Results), len(f.bad), f.bad)
	}
	for i, r := range res.Results {
		if r.Line != f.bad[i] || r.Problem == nil || r.Problem.Status < 400 || r.Problem.Detail == "" {
			t.Fatalf("result %d: %+v, want line %d with a problem", i, r, f.bad[i])
		}
	}
}

// TestImportBadLinesInTheMiddle: a 100 000-line import (10 000 with
// -short) with bad lines in the middle applies every good line once and
// reports every bad one by number; a re-run of the same file applies
// nothing and skips every good line.
func TestImportBadLinesInTheMiddle(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	const seed = 1901
	t.Logf("seed %d, %d lines", seed, n)
	bad := []int{n/3 + 1, n/3 + 2, n / 2, n/2 + 7, 2 * n / 3}
	f := genImport(seed, n, 200, bad)
	// HOLDFAST_IMPORT_PEBBLE=1 runs it on a Pebble store (fsync per batch)
	// instead of in memory, to measure.
	var mod func(c *region.Config)
	if os.Getenv("HOLDFAST_IMPORT_PEBBLE") != "" {
		dir := t.TempDir()
		mod = func(c *region.Config) { c.Storage, c.DataDir = nil, dir }
	}
	_, base := newHTTPRegion(t, region.NewMemStorage(), mod)
	start := time.Now()
	res, code := postImport(t, base, ndjsonCT, f.body)
	if code != 200 {
		t.Fatalf("import: %d", code)
	}
	t.Logf("%d lines (%d bytes) imported in %v", n, len(f.body), time.Since(start))
	if res.Applied != n-len(bad) || res.Skipped != 0 {
		t.Fatalf("applied %d skipped %d, want %d and 0", res.Applied, res.Skipped, n-len(bad))
	}
	checkFailedLines(t, res, f)
	checkImported(t, base, f)
	res, code = postImport(t, base, ndjsonCT, f.body)
	if code != 200 || res.Applied != 0 || res.Skipped != n-len(bad) {
		t.Fatalf("re-run: %d applied %d skipped %d, want 0 and %d", code, res.Applied, res.Skipped, n-len(bad))
	}
	checkFailedLines(t, res, f)
	checkImported(t, base, f)
}

// TestImportCrashAndRerun: the region process is killed (SIGKILL) in the
// middle of an import; after a restart a re-run of the same file applies
// each line exactly once in all.
func TestImportCrashAndRerun(t *testing.T) {
	const seed, n = 1902, 40_000
	t.Logf("seed %d, %d lines", seed, n)
	f := genImport(seed, n, 50, nil)
	dir := t.TempDir()
	p := startCrashChild(t, dir)
	type answer struct {
		code int
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Post(p.base+"/v1/stock/import", ndjsonCT, strings.NewReader(f.body))
		if err != nil {
			got <- answer{err: err}
			return
		}
		resp.Body.Close()
		got <- answer{code: resp.StatusCode}
	}()
	// Kill the region once some of the import is durable.
	testutil.Eventually(t, 20*time.Second, "a line of the import applied", func() bool {
		return call(t, p.base, "GET", "/v1/skus/imp-000", "", "", nil).Status == 200
	})
	p.kill()
	if a := <-got; a.err == nil && a.code == 200 {
		t.Fatal("the import finished before the kill: the test proves nothing (make the file larger)")
	}
	p = startCrashChild(t, dir)
	total := uint64(0)
	for sku := range f.want {
		if res := call(t, p.base, "GET", "/v1/skus/"+sku, "", "", nil); res.Status == 200 {
			var st api.Stock
			res.JSON(t, &st)
			total += st.Available
		}
	}
	res, code := postImport(t, p.base, ndjsonCT, f.body)
	if code != 200 || res.Failed != 0 || res.Applied+res.Skipped != n {
		t.Fatalf("re-run: %d %+v", code, res)
	}
	if res.Skipped == 0 || res.Applied == 0 {
		t.Fatalf("re-run applied %d skipped %d: the crash was not in the middle", res.Applied, res.Skipped)
	}
	t.Logf("killed with %d units durable; the re-run applied %d lines and skipped %d", total, res.Applied, res.Skipped)
	checkImported(t, p.base, f)
}

// TestImportCSVRecountsAndLimits: CSV with a header in any column order,
// recounts skipped when not newer, line numbers as in the file, bounds
// (lines, bytes) refused before anything is applied, content types, the
// metric.
func TestImportCSVRecountsAndLimits(t *testing.T) {
	r, base := newHTTPRegion(t, region.NewMemStorage(), func(c *region.Config) {
		c.ImportMaxLines, c.ImportMaxBytes = 6, 1024
	})
	asOf := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	csv := "key,op,sku,qty,on_hand,as_of\n" +
		"c-1,restock,A,10,,\n" +
		"\n" + // blank: skipped, still counted in line numbers
		",recount,A,,7," + asOf + "\n" +
		"c-2,restock,B,3,,\n" +
		"c-3,restock,B,3,7,\n" + // on_hand on a restock
		"c-4,write-off,A,x,,\n"
	res, code := postImport(t, base, "text/csv; charset=utf-8", csv)
	if code != 200 || res.Applied != 3 || res.Skipped != 0 || res.Failed != 2 {
		t.Fatalf("csv import: %d %+v", code, res)
	}
	if res.Results[0].Line != 6 || res.Results[1].Line != 7 || !strings.Contains(res.Results[1].Problem.Detail, "qty") {
		t.Fatalf("failed lines %+v, want 6 and 7", res.Results)
	}
	if st, _ := getStock(t, base, "A"); st.Available != 7 {
		t.Fatalf("A after restock 10 and recount to 7: %d", st.Available)
	}
	// The same recount again (and an older one) is skipped, not failed.
	res, code = postImport(t, base, ndjsonCT, `{"op":"recount","sku":"A","on_hand":100,"as_of":"`+asOf+`"}`+"\n"+
		`{"op":"restock","sku":"A","qty":10,"key":"c-1"}`+"\n"+
		`{"op":"restock","sku":"A","qty":11,"key":"c-1"}`)
	if code != 200 || res.Applied != 0 || res.Skipped != 2 || res.Failed != 1 ||
		!strings.HasSuffix(res.Results[0].Problem.Type, "/idempotency-key-reuse") {
		t.Fatalf("re-run: %d %+v", code, res)
	}
	before := snapshot(t, r)
	seven := strings.Repeat(`{"op":"restock","sku":"A","qty":1,"key":"k"}`+"\n", 7)
	for _, c := range []struct {
		ctype, body string
		status      int
	}{
		{ndjsonCT, seven[:len(seven)-1], http.StatusRequestEntityTooLarge}, // 7 lines > 6
		{ndjsonCT, strings.Repeat(" ", 1025), http.StatusRequestEntityTooLarge},
		{jsonCT, `{"op":"restock"}`, http.StatusUnsupportedMediaType},
		{"text/csv", "op,sku,colour\nrestock,A,red\n", http.StatusBadRequest},
		{"text/csv", "sku,qty\nA,1\n", http.StatusBadRequest},
		{ndjsonCT, "\n\n", http.StatusBadRequest},
	} {
		res := call(t, base, "POST", "/v1/stock/import", c.ctype, c.body, nil)
		if res.Status != c.status {
			t.Fatalf("%s %.40q: %d %s, want %d", c.ctype, c.body, res.Status, res.Body, c.status)
		}
		res.Problem(t)
	}
	if after := snapshot(t, r); after != before {
		t.Fatalf("refused imports changed the state:\n%s\n%s", before, after)
	}
	m := call(t, base, "GET", "/metrics", "", "", nil)
	for _, want := range []string{`holdfast_import_lines_total{result="applied"} 3`, `holdfast_import_lines_total{result="skipped"} 2`,
		`holdfast_import_lines_total{result="failed"} 3`} {
		if !strings.Contains(string(m.Body), want) {
			t.Fatalf("metrics lack %s", want)
		}
	}
}
