package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/holdfast-io/holdfast/api"
)

// Import formats: the Content-Type of an import body.
const (
	ImportNDJSON = "application/x-ndjson"
	ImportCSV    = "text/csv"
)

// ImportTimeout bounds one Import request (an import runs through the
// region's apply loop line by line: much longer than other requests).
const ImportTimeout = 10 * time.Minute

// maxImportResponse bounds an import's answer (every failed line is in it).
const maxImportResponse = 256 << 20

// ImportResult is the answer of an import: applied, skipped (already
// applied) and failed lines, and every failed line by number.
type ImportResult = api.ImportResult

// Import runs a bulk import (admin scope): body is NDJSON (format
// ImportNDJSON, one api.ImportLine per line) or CSV (ImportCSV, a header
// row naming the columns). Restock and write-off lines need a key, which
// makes a re-run of the same body safe (see docs/stock-operations.md).
// The request runs within ImportTimeout or ctx's deadline.
func (c *Client) Import(ctx context.Context, format string, body []byte) (*ImportResult, error) {
	if format != ImportNDJSON && format != ImportCSV {
		return nil, fmt.Errorf("client: import format must be %s or %s, got %q", ImportNDJSON, ImportCSV, format)
	}
	ctx, cancel := context.WithTimeout(ctx, ImportTimeout)
	defer cancel()
	const path = "/v1/stock/import"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("client: POST %s: %w", path, err)
	}
	req.Header.Set("Content-Type", format)
	c.setHeaders(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxImportResponse+1))
	if err != nil {
		return nil, fmt.Errorf("client: POST %s: read response: %w", path, err)
	}
	if len(raw) > maxImportResponse {
		return nil, fmt.Errorf("client: POST %s: response larger than %d bytes", path, maxImportResponse)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, problem(resp, raw)
	}
	var out ImportResult
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("client: POST %s: decode answer: %w", path, err)
	}
	return &out, nil
}

// ImportLines runs an NDJSON import of lines.
func (c *Client) ImportLines(ctx context.Context, lines []api.ImportLine) (*ImportResult, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i := range lines {
		if err := enc.Encode(&lines[i]); err != nil {
			return nil, fmt.Errorf("client: encode import line %d: %w", i+1, err)
		}
	}
	return c.Import(ctx, ImportNDJSON, buf.Bytes())
}
