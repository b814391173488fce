package region

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	apitypes "github.com/holdfast-io/holdfast/api"
	"hash/fnv"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/holdfast-io/holdfast/escrow"
)

// ProblemTypeBase prefixes every problem type URI; the slug after it is
// stable (escrow.Code.String() for core errors, the constants below for
// runtime ones).
const ProblemTypeBase = "https://holdfast.dev/problems/"

// Problem slugs of the runtime (core errors use escrow.Code.String()).
const (
	ProblemOverloaded       = "overloaded"
	ProblemStorage          = "storage-unavailable"
	ProblemOwnerUnreachable = "owner-unreachable"
	ProblemUnavailable      = "unavailable" // shutting down
	ProblemTimeout          = "timeout"
	ProblemUnauthorized     = "unauthorized"
	ProblemForbidden        = "forbidden"
	ProblemTooLarge         = "payload-too-large"
	ProblemMediaType        = "unsupported-media-type"
	ProblemMethod           = "method-not-allowed"
	ProblemRoute            = "route-not-found"
	ProblemNotReady         = "not-ready"
)

var problemTitles = map[string]string{
	escrow.CodeInvalid.String():           "Invalid request",
	escrow.CodeInsufficientStock.String(): "Insufficient stock",
	escrow.CodeUnknownSKU.String():        "Unknown SKU",
	escrow.CodeNotFound.String():          "Hold not found",
	escrow.CodeConflict.String():          "Conflict with the hold's state",
	escrow.CodeIdempotencyReuse.String():  "Idempotency key reused with a different request",
	escrow.CodeNotOwner.String():          "Hold belongs to another region",
	escrow.CodeInvariant.String():         "Internal invariant violated",
	escrow.CodeFenced.String():            "Region fenced: it refuses writes",
	escrow.CodeHoldCapacity.String():      "Region keeps its maximum of holds",
	ProblemOverloaded:                     "Region overloaded",
	ProblemStorage:                        "Storage unavailable",
	ProblemOwnerUnreachable:               "Owning region unreachable",
	ProblemUnavailable:                    "Region shutting down",
	ProblemTimeout:                        "Request timed out",
	ProblemUnauthorized:                   "Unauthorized",
	ProblemForbidden:                      "Forbidden",
	ProblemTooLarge:                       "Payload too large",
	ProblemMediaType:                      "Unsupported media type",
	ProblemMethod:                         "Method not allowed",
	ProblemRoute:                          "No such route",
	ProblemNotReady:                       "Not ready",
}

// codeStatus maps each escrow.Code to its HTTP status.
var codeStatus = map[escrow.Code]int{
	escrow.CodeInvalid:           http.StatusBadRequest,
	escrow.CodeInsufficientStock: http.StatusConflict,
	escrow.CodeUnknownSKU:        http.StatusNotFound,
	escrow.CodeNotFound:          http.StatusNotFound,
	escrow.CodeConflict:          http.StatusConflict,
	escrow.CodeIdempotencyReuse:  http.StatusUnprocessableEntity,
	escrow.CodeNotOwner:          http.StatusServiceUnavailable,
	escrow.CodeInvariant:         http.StatusInternalServerError,
	escrow.CodeFenced:            http.StatusServiceUnavailable,
	escrow.CodeHoldCapacity:      http.StatusServiceUnavailable,
}

// The API's JSON types live in package api; these names keep the server
// code readable until it moves to its own package.
type (
	Problem           = apitypes.Problem
	ItemJSON          = apitypes.Item
	HoldJSON          = apitypes.Hold
	CreateHoldRequest = apitypes.CreateHoldRequest
	ExtendRequest     = apitypes.ExtendRequest
	QtyRequest        = apitypes.QtyRequest
	StockJSON         = apitypes.Stock
	RegionStockJSON   = apitypes.RegionStock
)

type scope uint8

const (
	scopeNone   scope = iota // open: health, readiness, metrics
	scopeClient              // client scope
	scopeRead                // client or admin
	scopeAdmin               // admin scope
)

type route struct {
	pattern string
	scope   scope
	h       func(w http.ResponseWriter, req *http.Request)
}

type api struct {
	r      *Region
	mux    *http.ServeMux
	routes []route
}

// Handler returns the whole HTTP API, /metrics, /healthz and /readyz.
func (r *Region) Handler() http.Handler {
	r.handlerOnce.Do(func() { r.handler = newAPI(r) })
	return r.handler
}

// Routes lists every served "METHOD /pattern".
func (r *Region) Routes() []string {
	a := r.Handler().(*api)
	out := make([]string, len(a.routes))
	for i, rt := range a.routes {
		out[i] = rt.pattern
	}
	return out
}

func newAPI(r *Region) *api {
	a := &api{r: r, mux: http.NewServeMux()}
	metricsH := promhttp.HandlerFor(r.metrics.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(r.log.Handler(), slog.LevelWarn)})
	a.routes = []route{
		{"POST /v1/holds", scopeClient, a.createHold},
		{"GET /v1/holds/{id}", scopeClient, a.holdCmd(escrow.CmdGet)},
		{"POST /v1/holds/{id}/confirm", scopeClient, a.holdCmd(escrow.CmdConfirm)},
		{"POST /v1/holds/{id}/release", scopeClient, a.holdCmd(escrow.CmdRelease)},
		{"POST /v1/holds/{id}/extend", scopeClient, a.holdCmd(escrow.CmdExtend)},
		{"GET /v1/skus/{sku}", scopeRead, a.stock},
		{"POST /v1/skus/{sku}/restock", scopeAdmin, a.adjust(escrow.CmdRestock)},
		{"POST /v1/skus/{sku}/write-off", scopeAdmin, a.adjust(escrow.CmdWriteOff)},
		{"GET /metrics", scopeNone, metricsH.ServeHTTP},
		{"GET /healthz", scopeNone, a.healthz},
		{"GET /readyz", scopeNone, a.readyz},
	}
	for _, rt := range a.routes {
		a.mux.Handle(rt.pattern, a.wrap(rt))
	}
	// Everything else: 405 with Allow when the path exists under another
	// method, 404 otherwise, both as problem documents.
	a.mux.HandleFunc("/", a.fallback)
	return a
}

func (a *api) ServeHTTP(w http.ResponseWriter, req *http.Request) { a.mux.ServeHTTP(w, req) }

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (a *api) wrap(rt route) http.Handler {
	// The request counters of this route, resolved once per status code
	// instead of a label lookup per request.
	var byCode [600]atomic.Pointer[prometheus.Counter]
	count := func(code int) {
		if code < 0 || code >= len(byCode) {
			a.r.metrics.httpRequests.WithLabelValues(rt.pattern, strconv.Itoa(code)).Inc()
			return
		}
		c := byCode[code].Load()
		if c == nil {
			cc := a.r.metrics.httpRequests.WithLabelValues(rt.pattern, strconv.Itoa(code))
			c = &cc
			byCode[code].Store(c)
		}
		(*c).Inc()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() { count(sw.code) }()
		if rt.scope != scopeNone && a.r.tokens != nil {
			p := a.r.tokens.authenticate(req)
			if p == nil {
				sw.Header().Set("WWW-Authenticate", `Bearer realm="holdfast"`)
				a.problem(sw, req, http.StatusUnauthorized, ProblemUnauthorized, "a valid bearer token is required", nil)
				return
			}
			ok := false
			switch rt.scope {
			case scopeClient:
				ok = p.client
			case scopeRead:
				ok = p.client || p.admin
			case scopeAdmin:
				ok = p.admin
			}
			if !ok {
				a.problem(sw, req, http.StatusForbidden, ProblemForbidden,
					fmt.Sprintf("token %s lacks the scope this route needs", p.name), nil)
				return
			}
		}
		// The request deadline (Config.RequestTimeout) is applied by a.do,
		// without a context and timer per request.
		rt.h(sw, req)
	})
}

var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

func (a *api) fallback(w http.ResponseWriter, req *http.Request) {
	var allow []string
	for _, m := range probeMethods {
		if m == req.Method {
			continue
		}
		probe := req.Clone(req.Context())
		probe.Method = m
		if _, pat := a.mux.Handler(probe); pat != "/" && pat != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		hdr := allow[0]
		for _, m := range allow[1:] {
			hdr += ", " + m
		}
		w.Header().Set("Allow", hdr)
		a.problem(w, req, http.StatusMethodNotAllowed, ProblemMethod,
			fmt.Sprintf("%s is not allowed on %s (allowed: %s)", req.Method, req.URL.Path, hdr), nil)
		a.r.metrics.httpRequests.WithLabelValues("other", "405").Inc()
		return
	}
	a.problem(w, req, http.StatusNotFound, ProblemRoute, "no route "+req.Method+" "+req.URL.Path, nil)
	a.r.metrics.httpRequests.WithLabelValues("other", "404").Inc()
}

// problem writes an RFC 9457 problem document.
func (a *api) problem(w http.ResponseWriter, req *http.Request, status int, slug, detail string, extra func(p *Problem)) {
	p := Problem{Type: ProblemTypeBase + slug, Title: problemTitles[slug], Status: status, Detail: detail,
		Instance: req.URL.Path, Region: a.r.name}
	if p.Title == "" {
		p.Title = http.StatusText(status)
	}
	if extra != nil {
		extra(&p)
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	switch status {
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		if h.Get("Retry-After") == "" {
			h.Set("Retry-After", "1")
		}
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(&p)
}

// escrowProblem writes the problem of an escrow error.
func (a *api) escrowProblem(w http.ResponseWriter, req *http.Request, e *escrow.Error) {
	if e.Code == escrow.CodeRouted {
		// DoWithin sends a routed hold to its home or runs it here: a
		// routed answer reaching a client is a runtime bug, not a state
		// of the hold the client could act on.
		a.r.metrics.routed[routedBug].Inc()
		a.r.log.Error("a routed hold answer reached the HTTP API", "owner", e.Owner, "detail", e.Detail)
		a.problem(w, req, http.StatusInternalServerError, escrow.CodeInvariant.String(), "internal error: a routed hold was not served", nil)
		return
	}
	status, ok := codeStatus[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	switch e.Code {
	case escrow.CodeFenced:
		w.Header().Set("Retry-After", a.r.fenceRetryAfter())
	case escrow.CodeHoldCapacity:
		w.Header().Set("Retry-After", "1")
	}
	a.problem(w, req, status, e.Code.String(), e.Detail, func(p *Problem) {
		switch e.Code {
		case escrow.CodeInsufficientStock:
			p.SKU = e.SKU
			avail := e.Available
			p.Available = &avail
		case escrow.CodeUnknownSKU:
			p.SKU = e.SKU
		case escrow.CodeNotOwner:
			p.Owner = e.Owner
		}
	})
}

// runtimeProblem writes the problem of an error returned by Do.
func (a *api) runtimeProblem(w http.ResponseWriter, req *http.Request, err error) {
	switch {
	case errors.Is(err, ErrOverloaded):
		a.problem(w, req, http.StatusServiceUnavailable, ProblemOverloaded, "the region's request queue is full; retry shortly", nil)
	case errors.Is(err, ErrStorage):
		a.problem(w, req, http.StatusServiceUnavailable, ProblemStorage, "the request was not acknowledged (it may or may not have been stored); retry shortly, with the same Idempotency-Key for holds: "+err.Error(), nil)
	case errors.Is(err, ErrOwnerUnreachable):
		var ou *OwnerUnreachableError
		owner := ""
		if errors.As(err, &ou) {
			owner = ou.Owner
		}
		a.problem(w, req, http.StatusServiceUnavailable, ProblemOwnerUnreachable, err.Error()+"; retry shortly",
			func(p *Problem) { p.Owner = owner })
	case errors.Is(err, ErrClosed):
		a.problem(w, req, http.StatusServiceUnavailable, ProblemUnavailable, "the region is shutting down", nil)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		a.problem(w, req, http.StatusServiceUnavailable, ProblemTimeout,
			"no durable answer in time; the request may or may not have taken effect (retry with the same Idempotency-Key)", nil)
	default:
		a.r.log.Error("unexpected runtime error", "err", err)
		a.problem(w, req, http.StatusInternalServerError, escrow.CodeInvariant.String(), "internal error", nil)
	}
}

// badRequest writes a 400 invalid problem.
func (a *api) badRequest(w http.ResponseWriter, req *http.Request, detail string) {
	a.problem(w, req, http.StatusBadRequest, escrow.CodeInvalid.String(), detail, nil)
}

// decodeBody reads a JSON body into v: content type application/json,
// at most MaxBodyBytes, no unknown fields, nothing after the value. With
// optional set, an empty body leaves v as it is. It writes the problem and
// returns false on failure.
func (a *api) decodeBody(w http.ResponseWriter, req *http.Request, v any, optional bool) bool {
	bp := jsonBufPool.Get().(*[]byte)
	defer jsonBufPool.Put(bp)
	return a.decodeBodyBuf(w, req, v, optional, bp)
}

// decodeBodyBuf is decodeBody reading into *bp (which it may grow). A
// *CreateHoldRequest is parsed by parseCreateFast when it can.
func (a *api) decodeBodyBuf(w http.ResponseWriter, req *http.Request, v any, optional bool, bp *[]byte) bool {
	if req.ContentLength > a.r.cfg.MaxBodyBytes {
		a.problem(w, req, http.StatusRequestEntityTooLarge, ProblemTooLarge,
			fmt.Sprintf("body must be at most %d bytes", a.r.cfg.MaxBodyBytes), nil)
		return false
	}
	body := http.MaxBytesReader(w, req.Body, a.r.cfg.MaxBodyBytes)
	buf, err := readAllInto((*bp)[:0], body)
	*bp = buf[:0]
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			a.problem(w, req, http.StatusRequestEntityTooLarge, ProblemTooLarge,
				fmt.Sprintf("body must be at most %d bytes", a.r.cfg.MaxBodyBytes), nil)
			return false
		}
		a.badRequest(w, req, "reading body: "+err.Error())
		return false
	}
	if len(bytes.TrimSpace(buf)) == 0 {
		if optional {
			return true
		}
		a.badRequest(w, req, "a JSON body is required")
		return false
	}
	ct := req.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		a.problem(w, req, http.StatusUnsupportedMediaType, ProblemMediaType,
			fmt.Sprintf("content type must be application/json, got %q", ct), nil)
		return false
	}
	if cr, ok := v.(*CreateHoldRequest); ok {
		if parseCreateFast(buf, cr) {
			return true
		}
		*cr = CreateHoldRequest{} // encoding/json decodes from scratch
	}
	dec := json.NewDecoder(bytes.NewReader(buf))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		a.badRequest(w, req, "malformed JSON body: "+err.Error())
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		a.badRequest(w, req, "malformed JSON body: data after the JSON value")
		return false
	}
	return true
}

// readAllInto is io.ReadAll appending to b.
func readAllInto(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
	}
}

// do runs cmd through the region within the request deadline. When the
// region or the core refuses it, do writes the problem and returns false.
func (a *api) do(w http.ResponseWriter, req *http.Request, cmd escrow.Command) (escrow.Reply, bool) {
	rep, err := a.r.DoWithin(req.Context(), cmd, a.r.cfg.RequestTimeout)
	if err != nil {
		a.runtimeProblem(w, req, err)
		return rep, false
	}
	if rep.Err != nil {
		a.escrowProblem(w, req, rep.Err)
		return rep, false
	}
	return rep, true
}

// parseTTL parses a Go duration within [MinTTL, the max hold lifetime].
func (a *api) parseTTL(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("ttl %q is not a duration like \"10m\"", s)
	}
	maxLife := a.r.cfg.Escrow.MaxLifetime
	if maxLife == 0 {
		maxLife = escrow.DefaultMaxLife
	}
	if d < escrow.MinTTL || d > maxLife {
		return 0, fmt.Errorf("ttl must be between %v and %v, got %v", escrow.MinTTL, maxLife, d)
	}
	return d, nil
}

func (a *api) defaultTTL() time.Duration {
	if d := a.r.cfg.Escrow.DefaultTTL; d > 0 {
		return d
	}
	return escrow.DefaultTTL
}

func (a *api) createHold(w http.ResponseWriter, req *http.Request) {
	key := req.Header.Get("Idempotency-Key")
	if len(req.Header.Values("Idempotency-Key")) > 1 {
		a.badRequest(w, req, "at most one Idempotency-Key header")
		return
	}
	if key != "" {
		if err := escrow.ValidIdemKey(key); err != nil {
			a.badRequest(w, req, err.Detail)
			return
		}
	}
	var body CreateHoldRequest
	if !a.decodeBody(w, req, &body, false) {
		return
	}
	if len(body.Items) == 0 {
		a.badRequest(w, req, "items: a hold needs at least one item")
		return
	}
	if len(body.Items) > escrow.MaxLines {
		a.badRequest(w, req, fmt.Sprintf("items: at most %d lines, got %d", escrow.MaxLines, len(body.Items)))
		return
	}
	cmd := escrow.Command{Kind: escrow.CmdHold, IdemKey: key, Lines: make([]escrow.Line, len(body.Items))}
	for i, it := range body.Items {
		cmd.Lines[i] = escrow.Line{SKU: it.SKU, Qty: it.Qty}
	}
	if body.TTL != "" {
		d, err := a.parseTTL(body.TTL)
		if err != nil {
			a.badRequest(w, req, err.Error())
			return
		}
		cmd.TTL = d
	}
	if len(body.Metadata) > 0 && !bytes.Equal(body.Metadata, []byte("null")) {
		var c bytes.Buffer
		if err := json.Compact(&c, body.Metadata); err != nil {
			a.badRequest(w, req, "metadata: "+err.Error())
			return
		}
		if c.Len() > escrow.MaxMetaLen {
			a.badRequest(w, req, fmt.Sprintf("metadata must be at most %d bytes of compact JSON, got %d", escrow.MaxMetaLen, c.Len()))
			return
		}
		cmd.Meta = c.String()
	}
	if key != "" {
		cmd.IdemHash = a.idemHash(&cmd)
	}
	rep, ok := a.do(w, req, cmd)
	if !ok {
		return
	}
	status := http.StatusCreated
	if rep.Replayed {
		status = http.StatusOK
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", "/v1/holds/"+rep.Hold.ID)
	a.writeHold(w, status, rep.Hold)
}

// idemHash fingerprints the normalized request: the cart as the core
// normalizes it (sorted, merged), the effective TTL and the metadata. Two
// bodies that mean the same hold hash the same, whatever their spelling.
func (a *api) idemHash(cmd *escrow.Command) uint64 {
	h := fnv.New64a()
	lines := cmd.Lines
	if norm, err := escrow.NormalizeLines(cmd.Lines); err == nil {
		lines = norm
	}
	var b []byte
	for _, l := range lines {
		b = strconv.AppendQuote(b, l.SKU)
		b = append(b, ':')
		b = strconv.AppendUint(b, l.Qty, 10)
		b = append(b, ',')
	}
	ttl := cmd.TTL
	if ttl == 0 {
		ttl = a.defaultTTL()
	}
	b = append(b, "|ttl="...)
	b = strconv.AppendInt(b, int64(ttl), 10)
	b = append(b, "|meta="...)
	b = append(b, cmd.Meta...)
	h.Write(b)
	return h.Sum64()
}

func (a *api) holdCmd(kind escrow.CommandKind) func(w http.ResponseWriter, req *http.Request) {
	return func(w http.ResponseWriter, req *http.Request) {
		cmd := escrow.Command{Kind: kind, HoldID: req.PathValue("id")}
		if _, err := escrow.OwnerOf(cmd.HoldID); err != nil {
			a.escrowProblem(w, req, err)
			return
		}
		switch kind {
		case escrow.CmdExtend:
			var body ExtendRequest
			if !a.decodeBody(w, req, &body, false) {
				return
			}
			if body.TTL == "" {
				a.badRequest(w, req, "ttl is required")
				return
			}
			d, err := a.parseTTL(body.TTL)
			if err != nil {
				a.badRequest(w, req, err.Error())
				return
			}
			cmd.TTL = d
		case escrow.CmdConfirm, escrow.CmdRelease:
			var body struct{}
			if !a.decodeBody(w, req, &body, true) {
				return
			}
		}
		rep, ok := a.do(w, req, cmd)
		if !ok {
			return
		}
		a.writeHold(w, http.StatusOK, rep.Hold)
	}
}

func (a *api) stock(w http.ResponseWriter, req *http.Request) {
	sku := req.PathValue("sku")
	if err := escrow.ValidSKU(sku); err != nil {
		a.escrowProblem(w, req, err)
		return
	}
	rep, ok := a.do(w, req, escrow.Command{Kind: escrow.CmdStock, SKU: sku})
	if !ok {
		return
	}
	a.writeJSON(w, http.StatusOK, stockJSON(rep.Stock, nil))
}

func (a *api) adjust(kind escrow.CommandKind) func(w http.ResponseWriter, req *http.Request) {
	return func(w http.ResponseWriter, req *http.Request) {
		sku := req.PathValue("sku")
		if err := escrow.ValidSKU(sku); err != nil {
			a.escrowProblem(w, req, err)
			return
		}
		var body QtyRequest
		if !a.decodeBody(w, req, &body, false) {
			return
		}
		if err := escrow.ValidQty("qty", body.Qty); err != nil {
			a.escrowProblem(w, req, err)
			return
		}
		rep, ok := a.do(w, req, escrow.Command{Kind: kind, SKU: sku, Qty: body.Qty})
		if !ok {
			return
		}
		applied := rep.Applied
		a.writeJSON(w, http.StatusOK, stockJSON(rep.Stock, &applied))
	}
}

func (a *api) healthz(w http.ResponseWriter, req *http.Request) {
	a.writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "region": a.r.name})
}

func (a *api) readyz(w http.ResponseWriter, req *http.Request) {
	if !a.r.Ready() {
		a.problem(w, req, http.StatusServiceUnavailable, ProblemNotReady,
			"the region is starting, closing or rebuilding its state from storage", nil)
		return
	}
	if st := a.r.Fence(); st.Fenced {
		w.Header().Set("Retry-After", a.r.fenceRetryAfter())
		a.problem(w, req, http.StatusServiceUnavailable, escrow.CodeFenced.String(), st.Detail, nil)
		return
	}
	a.writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "region": a.r.name})
}

func (a *api) writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		a.r.log.Debug("writing response", "err", err)
	}
}

func holdJSON(h *escrow.Hold) *HoldJSON {
	region, _ := escrow.OwnerOf(h.ID)
	out := &HoldJSON{
		ID: h.ID, Region: region, State: h.State.String(), Items: make([]ItemJSON, len(h.Lines)),
		CreatedAt: h.Created.UTC(), ExpiresAt: h.Expires.UTC(), MaxExpiresAt: h.MaxExpires.UTC(), UpdatedAt: h.Updated.UTC(),
	}
	for i, l := range h.Lines {
		out.Items[i] = ItemJSON{SKU: l.SKU, Qty: l.Qty}
	}
	if h.Meta != "" {
		if json.Valid([]byte(h.Meta)) {
			out.Metadata = json.RawMessage(h.Meta)
		} else {
			b, _ := json.Marshal(h.Meta)
			out.Metadata = b
		}
	}
	return out
}

func stockJSON(v *escrow.StockView, applied *uint64) *StockJSON {
	out := &StockJSON{SKU: v.SKU, Region: v.Region, Available: v.Available, Held: v.Held, Sold: v.Sold,
		GlobalAvailable: v.Global, Regions: make(map[string]RegionStockJSON, len(v.Regions)), Applied: applied}
	for _, rs := range v.Regions {
		out.Regions[rs.Region] = RegionStockJSON{Available: rs.Available, Held: rs.Held, Sold: rs.Sold,
			Seq: rs.Seq, AgeMs: rs.Age.Milliseconds()}
	}
	return out
}

// Serve serves the API on ln until ctx is done, then shuts the HTTP server
// down gracefully (in-flight requests finish). Without a tokens file it
// refuses any listener that is not loopback. The caller closes the Region.
func (r *Region) Serve(ctx context.Context, ln net.Listener) error {
	if r.tokens == nil {
		if !isLoopback(ln.Addr()) {
			return fmt.Errorf("region %s: refusing to serve on %s without auth: set tokens_file, or listen on 127.0.0.1 / ::1",
				r.name, ln.Addr())
		}
		r.log.Warn("no tokens file: the API has no auth and listens on loopback only", "addr", ln.Addr().String())
	}
	srv := &http.Server{
		Handler:           r.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      r.cfg.RequestTimeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errCh := make(chan error, 1)
	go func() { errCh <- srv.Serve(ln) }()
	r.log.Info("serving HTTP", "addr", ln.Addr().String())
	select {
	case err := <-errCh:
		return fmt.Errorf("region %s: serve: %w", r.name, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), r.cfg.RequestTimeout+5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errCh; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("region %s: shutdown HTTP: %w", r.name, err)
	}
	return nil
}
