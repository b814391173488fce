package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/holdfast-io/holdfast/client"
)

// TestStockImportCommand: a chunked NDJSON import reports failed lines by
// their number in the file (across chunks), a re-run skips every applied
// line, and a CSV file is recognised by its extension.
func TestStockImportCommand(t *testing.T) {
	url := startRegion(t, "eu", "")
	dir := t.TempDir()
	var sb strings.Builder
	for i := 1; i <= 25; i++ {
		switch i {
		case 7:
			sb.WriteString(`{"op":"restock","sku":"A","qty":1}` + "\n") // no key
		case 19:
			sb.WriteString("not json\n")
		default:
			fmt.Fprintf(&sb, `{"op":"restock","sku":"A","qty":2,"key":"cli-%d"}`+"\n", i)
		}
	}
	nd := filepath.Join(dir, "feed.ndjson")
	if err := os.WriteFile(nd, []byte(sb.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "stock", "import", nd, "--chunk", "5", "--url", url)
	if err == nil || !strings.Contains(err.Error(), "2 of 25 lines failed") {
		t.Fatalf("import with 2 bad lines: err %v\n%s", err, out)
	}
	wantContains(t, out, "applied 23, skipped 0 (already applied), failed 2", "line 7: invalid (400)", "key is required", "line 19: invalid")
	out, _ = run(t, "stock", "import", nd, "--chunk", "0", "--url", url)
	wantContains(t, out, "applied 0, skipped 23 (already applied), failed 2", "line 7:", "line 19:")
	c, err := client.New(url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Stock(context.Background(), "A"); err != nil || st.Available != 46 {
		t.Fatalf("A: %+v %v, want 46 available (23 lines of 2, once)", st, err)
	}
	csv := filepath.Join(dir, "erp.csv")
	if err := os.WriteFile(csv, []byte("op,sku,on_hand,as_of\nrecount,A,40,2026-01-01T00:00:00Z\nrecount,B,5,2026-01-01T00:00:00Z\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = mustRun(t, "stock", "import", csv, "--chunk", "1", "--url", url)
	wantContains(t, out, "applied 2, skipped 0 (already applied), failed 0")
	if _, err := run(t, "stock", "import", filepath.Join(dir, "feed.txt"), "--url", url); err == nil || !strings.Contains(err.Error(), "--format") {
		t.Fatalf("unknown extension: %v", err)
	}
}
