package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/client"
)

// newStockImportCmd is "holdfast stock import FILE".
func newStockImportCmd() *cobra.Command {
	var (
		cf     clientFlags
		format string
		chunk  int
		quiet  bool
	)
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Bulk restock, write-off and recount from an NDJSON or CSV file (admin)",
		Long: `Import sends FILE to the region's bulk import (POST /v1/stock/import), one
operation per line: NDJSON ({"op": "restock"|"write-off"|"recount", "sku",
"qty" | "on_hand", "as_of", "key"} per line) or CSV (a header row naming the
same columns). The format comes from the extension (.ndjson, .jsonl, .csv) or
--format. FILE "-" reads standard input (give --format).

restock and write-off lines need a key, their idempotency key: re-running the
same file after a crash or an error applies each line once (lines already
applied are counted as skipped, as are recounts not after the last one). The
file is sent --chunk lines at a time (0: in one request) with a progress line
on standard error; the summary lists every failed line by its number in FILE.
Chunked CSV needs one record per line (no line breaks inside quoted fields).
The exit status is 1 when a line failed.`,
		Example: `  holdfast stock import nightly.ndjson
  holdfast stock import erp-export.csv --chunk 50000
  erp-dump | holdfast stock import - --format ndjson --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ct, err := importFormat(args[0], format)
			if err != nil {
				return err
			}
			if chunk < 0 {
				return fmt.Errorf("--chunk must be at least 0, got %d", chunk)
			}
			var data []byte
			if args[0] == "-" {
				data, err = io.ReadAll(cmd.InOrStdin())
			} else {
				data, err = os.ReadFile(args[0])
			}
			if err != nil {
				return err
			}
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			chunks, total := splitImport(data, ct == client.ImportCSV, chunk)
			sum := api.ImportResult{Results: []api.ImportLineResult{}}
			progress := cmd.ErrOrStderr()
			done := 0
			for _, ch := range chunks {
				res, err := c.Import(cmd.Context(), ct, ch.body)
				if err != nil {
					if done > 0 && !quiet {
						fmt.Fprintln(progress)
					}
					ferr := cf.fail(cmd, err)
					if done > 0 {
						return fmt.Errorf("%w\nthe import stopped after %d of %d lines (applied %d, skipped %d, failed %d); re-run the same file: lines already applied are skipped",
							ferr, done, total, sum.Applied, sum.Skipped, sum.Failed)
					}
					return ferr
				}
				sum.Applied += res.Applied
				sum.Skipped += res.Skipped
				sum.Failed += res.Failed
				for _, r := range res.Results {
					r.Line = ch.fileLine(r.Line)
					sum.Results = append(sum.Results, r)
				}
				done += ch.lines
				if !quiet && !cf.json {
					fmt.Fprintf(progress, "\rimported %d/%d lines: %d applied, %d skipped, %d failed", done, total,
						sum.Applied, sum.Skipped, sum.Failed)
				}
			}
			if !quiet && !cf.json && len(chunks) > 0 {
				fmt.Fprintln(progress)
			}
			w := cmd.OutOrStdout()
			if cf.json {
				b, _ := json.Marshal(&sum)
				writeRaw(w, b)
			} else {
				fmt.Fprintf(w, "applied %d, skipped %d (already applied), failed %d\n", sum.Applied, sum.Skipped, sum.Failed)
				for _, r := range sum.Results {
					fmt.Fprintf(w, "line %d: %s\n", r.Line, lineProblem(r.Problem))
				}
			}
			if sum.Failed > 0 {
				return fmt.Errorf("%d of %d lines failed", sum.Failed, total)
			}
			return nil
		},
	}
	cf.add(cmd)
	cmd.Flags().StringVar(&format, "format", "", "ndjson or csv (default: from the file's extension)")
	cmd.Flags().IntVar(&chunk, "chunk", 10000, "lines per request (0: the whole file in one request)")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress line")
	return cmd
}

func lineProblem(p *api.Problem) string {
	if p == nil {
		return "failed"
	}
	slug := p.Type[strings.LastIndexByte(p.Type, '/')+1:]
	return fmt.Sprintf("%s (%d): %s", slug, p.Status, p.Detail)
}

func importFormat(file, format string) (string, error) {
	if format == "" {
		switch strings.ToLower(filepath.Ext(file)) {
		case ".ndjson", ".jsonl":
			format = "ndjson"
		case ".csv":
			format = "csv"
		default:
			return "", fmt.Errorf("cannot tell the format of %q from its extension: give --format ndjson or csv", file)
		}
	}
	switch format {
	case "ndjson", "jsonl":
		return client.ImportNDJSON, nil
	case "csv":
		return client.ImportCSV, nil
	}
	return "", errors.New("--format must be ndjson or csv, got " + format)
}

// importChunk is one request of a chunked import.
type importChunk struct {
	body  []byte
	lines int // data lines in it
	first int // line number in the file of its first line after the header
	csv   bool
}

// fileLine maps a line number of the chunk's body to one of the file.
func (c *importChunk) fileLine(n int) int {
	if c.csv {
		return c.first + n - 2 // the chunk's line 1 is the header
	}
	return c.first + n - 1
}

// splitImport cuts data into chunks of at most n lines (0: one chunk), a
// CSV header repeated in each; total counts the file's data lines.
func splitImport(data []byte, csv bool, n int) (chunks []importChunk, total int) {
	var header []byte
	lineNo := 1
	if csv {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return []importChunk{{body: data, first: 2, csv: true}}, 0
		}
		header, data = data[:i+1], data[i+1:]
		lineNo = 2
	}
	cur := importChunk{first: lineNo, csv: csv}
	var body bytes.Buffer
	body.Write(header)
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		body.Write(line)
		lineNo++
		if len(bytes.TrimSpace(line)) > 0 {
			cur.lines++
			total++
		}
		if n > 0 && cur.lines == n {
			cur.body = append([]byte(nil), body.Bytes()...)
			chunks = append(chunks, cur)
			cur = importChunk{first: lineNo, csv: csv}
			body.Reset()
			body.Write(header)
		}
	}
	if cur.lines > 0 || len(chunks) == 0 {
		cur.body = append([]byte(nil), body.Bytes()...)
		chunks = append(chunks, cur)
	}
	return chunks, total
}
