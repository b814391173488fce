package httpapi

// Bulk stock import: POST /v1/stock/import (admin) with NDJSON or CSV
// lines of restock, write-off and recount. The body (at most
// import_max_bytes) is read and parsed first; more than import_max_lines
// data lines is 413 before anything is applied. The lines are then run
// through the apply loop in file order, importBatch commands at a time
// (Region.DoBatch: each answered only once its batch is durable). A bad
// line is reported by number and never stops or undoes the others.
// Re-runs are safe: restock and write-off lines carry an idempotency key,
// kept by the core in the same durable batch as the change (a repeated key
// is skipped as replayed); a recount not after the last one applied is
// skipped. See docs/stock-operations.md.

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// ProblemImportRunning: another import is running on the region (429).
const ProblemImportRunning = "import-running"

// importBatch is how many commands of an import enter the apply loop at a
// time.
const importBatch = 256

// importReadTimeout bounds reading an import's body (the server's read
// timeout is for ordinary requests).
const importReadTimeout = 5 * time.Minute

// batchRuntime is a Runtime that runs several stock commands in order in
// as few durable batches as it can (region.Region.DoBatch). Runtimes
// without it run an import's commands one by one.
type batchRuntime interface {
	DoBatch(ctx context.Context, cmds []escrow.Command, timeout time.Duration) ([]escrow.Reply, error)
}

// importState is the Server's import configuration, semaphore and metric.
type importState struct {
	maxBytes int64
	maxLines int
	running  chan struct{} // capacity 1: one import at a time per server
	lines    *prometheus.CounterVec
}

func (s *Server) initImport(cfg region.Config) error {
	s.imp.maxBytes, s.imp.maxLines = cfg.ImportMaxBytes, cfg.ImportMaxLines
	if s.imp.maxBytes <= 0 {
		s.imp.maxBytes = region.DefaultImportMaxBytes
	}
	if s.imp.maxLines <= 0 {
		s.imp.maxLines = region.DefaultImportMaxLines
	}
	s.imp.running = make(chan struct{}, 1)
	lines := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "holdfast_import_lines_total",
		Help: "Lines of bulk imports (POST /v1/stock/import) by result: applied, skipped (already applied), failed.",
	}, []string{"result"})
	if err := s.rt.Registry().Register(lines); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return fmt.Errorf("httpapi: register metrics: %w", err)
		}
		lines = are.ExistingCollector.(*prometheus.CounterVec)
	}
	for _, r := range []string{"applied", "skipped", "failed"} {
		lines.WithLabelValues(r)
	}
	s.imp.lines = lines
	return nil
}

// importLine is one parsed data line: a command, or the problem that
// failed it.
type importLine struct {
	line int
	cmd  escrow.Command
	prob *api.Problem
}

var errTooManyLines = errors.New("too many lines")

func (s *Server) importStock(w http.ResponseWriter, req *http.Request) {
	ct := req.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/x-ndjson" && mt != "text/csv") {
		s.problem(exch(w, req), http.StatusUnsupportedMediaType, ProblemMediaType,
			fmt.Sprintf("content type must be application/x-ndjson or text/csv, got %q", ct), nil)
		return
	}
	tooLarge := func() { s.importTooLarge(exch(w, req)) }
	if req.ContentLength > s.imp.maxBytes {
		tooLarge()
		return
	}
	select {
	case s.imp.running <- struct{}{}:
		defer func() { <-s.imp.running }()
	default:
		w.Header().Set("Retry-After", "5")
		s.problem(exch(w, req), http.StatusTooManyRequests, ProblemImportRunning,
			"another import is running on this region; retry when it finished", func(p *api.Problem) { p.Title = "Import running" })
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(importReadTimeout))
	buf, err := io.ReadAll(http.MaxBytesReader(w, req.Body, s.imp.maxBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			tooLarge()
			return
		}
		s.badRequest(exch(w, req), "reading body: "+err.Error())
		return
	}
	var lines []importLine
	if mt == "text/csv" {
		lines, err = s.parseImportCSV(req, buf)
	} else {
		lines, err = s.parseImportNDJSON(req, buf)
	}
	switch {
	case errors.Is(err, errTooManyLines):
		s.problem(exch(w, req), http.StatusRequestEntityTooLarge, ProblemTooLarge,
			fmt.Sprintf("an import must have at most %d data lines (import_max_lines); nothing was applied, split the file", s.imp.maxLines), nil)
		return
	case err != nil:
		s.badRequest(exch(w, req), err.Error())
		return
	case len(lines) == 0:
		s.badRequest(exch(w, req), "the import has no data lines")
		return
	}
	res := api.ImportResult{Results: []api.ImportLineResult{}}
	fail := func(l *importLine) {
		res.Failed++
		res.Results = append(res.Results, api.ImportLineResult{Line: l.line, Problem: l.prob})
	}
	var cmds []escrow.Command
	var pending []*importLine
	flush := func() error {
		if len(cmds) == 0 {
			return nil
		}
		_ = rc.SetWriteDeadline(time.Now().Add(s.requestTimeout + 10*time.Second))
		reps, err := s.doImportBatch(req.Context(), cmds)
		if err != nil {
			return err
		}
		for i, rep := range reps {
			l := pending[i]
			switch {
			case rep.Err == nil && !rep.Replayed:
				res.Applied++
			case rep.Err == nil, rep.Err.Code == escrow.CodeConflict && l.cmd.Kind == escrow.CmdRecount:
				res.Skipped++
			default:
				l.prob = s.lineEscrowProblem(req, rep.Err)
				fail(l)
			}
		}
		cmds, pending = cmds[:0], pending[:0]
		return nil
	}
	var runErr error
	done := 0 // lines processed before a runtime error
	for i := range lines {
		l := &lines[i]
		if l.prob != nil {
			fail(l)
			continue
		}
		cmds = append(cmds, l.cmd)
		pending = append(pending, l)
		if len(cmds) == importBatch {
			if runErr = flush(); runErr != nil {
				break
			}
			done = l.line
		}
	}
	if runErr == nil {
		runErr = flush()
	}
	s.imp.lines.WithLabelValues("applied").Add(float64(res.Applied))
	s.imp.lines.WithLabelValues("skipped").Add(float64(res.Skipped))
	s.imp.lines.WithLabelValues("failed").Add(float64(res.Failed))
	if runErr != nil {
		s.log.Warn("import stopped", "after_line", done, "applied", res.Applied, "err", runErr)
		msg := fmt.Sprintf("the import stopped after line %d (applied %d, skipped %d, failed %d so far; the lines of the batch in flight may or may not be applied): %v; re-run the same file: lines already applied are skipped",
			done, res.Applied, res.Skipped, res.Failed, runErr)
		w.Header().Set("Retry-After", "1")
		s.problem(exch(w, req), http.StatusServiceUnavailable, ProblemUnavailable, msg, nil)
		return
	}
	sort.SliceStable(res.Results, func(i, j int) bool { return res.Results[i].Line < res.Results[j].Line })
	s.writeJSON(w, http.StatusOK, &res)
}

func (s *Server) doImportBatch(ctx context.Context, cmds []escrow.Command) ([]escrow.Reply, error) {
	if br, ok := s.rt.(batchRuntime); ok {
		return br.DoBatch(ctx, cmds, s.requestTimeout)
	}
	out := make([]escrow.Reply, len(cmds))
	for i := range cmds {
		rep, err := s.rt.DoWithin(ctx, cmds[i], s.requestTimeout)
		if err != nil {
			return nil, err
		}
		out[i] = rep
	}
	return out, nil
}

// lineProblem is the problem document of one failed line.
func (s *Server) lineProblem(req *http.Request, status int, slug, detail string) *api.Problem {
	p := &api.Problem{Type: ProblemTypeBase + slug, Title: problemTitles[slug], Status: status, Detail: detail,
		Instance: req.URL.Path, Region: s.name}
	if p.Title == "" {
		p.Title = http.StatusText(status)
	}
	return p
}

func (s *Server) lineEscrowProblem(req *http.Request, e *escrow.Error) *api.Problem {
	status, ok := codeStatus[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	p := s.lineProblem(req, status, e.Code.String(), e.Detail)
	if e.Code == escrow.CodeUnknownSKU || e.Code == escrow.CodeInsufficientStock {
		p.SKU, p.Location = escrow.SplitStockKey(e.SKU)
	}
	return p
}

func (s *Server) invalidLine(req *http.Request, line int, format string, args ...any) importLine {
	return importLine{line: line, prob: s.lineProblem(req, http.StatusBadRequest, escrow.CodeInvalid.String(),
		fmt.Sprintf("line %d: ", line)+fmt.Sprintf(format, args...))}
}

// importCommand validates one decoded line and builds its command.
func (s *Server) importCommand(req *http.Request, n int, l *api.ImportLine) importLine {
	if err := escrow.ValidSKU(l.SKU); err != nil {
		return s.invalidLine(req, n, "%s", err.Detail)
	}
	c := escrow.Command{SKU: l.SKU}
	if l.Location != "" {
		if err := escrow.ValidLocation(l.Location); err != nil {
			return s.invalidLine(req, n, "location: %s", err.Detail)
		}
		c.SKU = escrow.StockKey(l.SKU, l.Location)
	}
	switch l.Op {
	case api.ImportRestock, api.ImportWriteOff:
		c.Kind = escrow.CmdRestock
		if l.Op == api.ImportWriteOff {
			c.Kind = escrow.CmdWriteOff
		}
		switch {
		case l.Qty == nil:
			return s.invalidLine(req, n, "qty is required on %s lines", l.Op)
		case l.OnHand != nil || l.AsOf != nil:
			return s.invalidLine(req, n, "on_hand and as_of are for recount lines, not %s", l.Op)
		case l.Key == "":
			return s.invalidLine(req, n, "key is required on %s lines of an import: the line's idempotency key makes a re-run of the file safe", l.Op)
		}
		if err := escrow.ValidQty("qty", *l.Qty); err != nil {
			return s.invalidLine(req, n, "%s", err.Detail)
		}
		if err := escrow.ValidIdemKey(l.Key); err != nil {
			return s.invalidLine(req, n, "key: %s", err.Detail)
		}
		c.Qty, c.IdemKey = *l.Qty, l.Key
		h := fnv.New64a()
		fmt.Fprintf(h, "import\x00%s\x00%s\x00%d", l.Op, c.SKU, c.Qty) // c.SKU: the stock key
		c.IdemHash = h.Sum64()
	case api.ImportRecount:
		switch {
		case l.OnHand == nil || l.AsOf == nil:
			return s.invalidLine(req, n, "on_hand and as_of are required on recount lines")
		case l.Qty != nil:
			return s.invalidLine(req, n, "qty is for restock and write-off lines, not recount")
		case *l.OnHand > escrow.MaxOnHand:
			return s.invalidLine(req, n, "on_hand must be at most %d", uint64(escrow.MaxOnHand))
		}
		c.Kind, c.OnHand, c.AsOf = escrow.CmdRecount, *l.OnHand, *l.AsOf
	case "":
		return s.invalidLine(req, n, "op is required (restock, write-off or recount)")
	default:
		return s.invalidLine(req, n, "op must be restock, write-off or recount, got %q", truncate(l.Op, 40))
	}
	return importLine{line: n, cmd: c}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (s *Server) parseImportNDJSON(req *http.Request, buf []byte) ([]importLine, error) {
	var out []importLine
	n := 0
	for len(buf) > 0 {
		n++
		var line []byte
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			line, buf = buf[:i], buf[i+1:]
		} else {
			line, buf = buf, nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue // blank lines are allowed and not counted
		}
		if len(out) == s.imp.maxLines {
			return nil, errTooManyLines
		}
		if k := duplicateKey(line); k != "" {
			out = append(out, s.invalidLine(req, n, "duplicate key %q", k))
			continue
		}
		var l api.ImportLine
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			out = append(out, s.invalidLine(req, n, "malformed JSON: %v", err))
			continue
		}
		if dec.More() {
			out = append(out, s.invalidLine(req, n, "one JSON object per line"))
			continue
		}
		out = append(out, s.importCommand(req, n, &l))
	}
	return out, nil
}

var importColumns = []string{"op", "sku", "location", "qty", "on_hand", "as_of", "key"}

func (s *Server) parseImportCSV(req *http.Request, buf []byte) ([]importLine, error) {
	r := csv.NewReader(bytes.NewReader(buf))
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("CSV header: %v", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		known := false
		for _, c := range importColumns {
			known = known || c == h
		}
		if !known {
			return nil, fmt.Errorf("CSV header: unknown column %q (columns: %s)", truncate(h, 40), strings.Join(importColumns, ", "))
		}
		if _, dup := col[h]; dup {
			return nil, fmt.Errorf("CSV header: column %q twice", h)
		}
		col[h] = i
	}
	if _, ok := col["op"]; !ok {
		return nil, errors.New("CSV header: an op column is required")
	}
	if _, ok := col["sku"]; !ok {
		return nil, errors.New("CSV header: a sku column is required")
	}
	var out []importLine
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if len(out) == s.imp.maxLines {
			return nil, errTooManyLines
		}
		if err != nil {
			var pe *csv.ParseError
			n := 0
			if errors.As(err, &pe) {
				n = pe.StartLine
			}
			out = append(out, s.invalidLine(req, n, "malformed CSV: %v", err))
			continue
		}
		n, _ := r.FieldPos(0)
		if len(rec) != len(header) {
			out = append(out, s.invalidLine(req, n, "%d fields, the header has %d", len(rec), len(header)))
			continue
		}
		cell := func(name string) string {
			if i, ok := col[name]; ok {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		l := api.ImportLine{Op: cell("op"), SKU: cell("sku"), Location: cell("location"), Key: cell("key")}
		bad := ""
		num := func(name string) *uint64 {
			v := cell(name)
			if v == "" {
				return nil
			}
			u, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				bad = fmt.Sprintf("%s must be a whole number ≥ 0, got %q", name, truncate(v, 40))
				return nil
			}
			return &u
		}
		l.Qty, l.OnHand = num("qty"), num("on_hand")
		if v := cell("as_of"); v != "" && bad == "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				bad = fmt.Sprintf("as_of must be an RFC 3339 time, got %q", truncate(v, 40))
			}
			l.AsOf = &t
		}
		if bad != "" {
			out = append(out, s.invalidLine(req, n, "%s", bad))
			continue
		}
		out = append(out, s.importCommand(req, n, &l))
	}
}
