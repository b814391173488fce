// Package httpapi serves holdfast's HTTP API for one region: the hold and
// stock routes, /metrics, /healthz and /readyz, with bearer-token scopes.
// It reaches the region runtime only through Runtime, so it can be tested
// against a fake; its JSON types are package api's, shared with the client.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// Runtime is what the HTTP API needs of a region; *region.Region
// implements it.
type Runtime interface {
	// Name is the region's name, reported in every problem and health answer.
	Name() string
	// Ready reports whether the region accepts requests (/readyz).
	Ready() bool
	// Fence is the region's fence status (/readyz, Retry-After of fenced).
	Fence() escrow.FenceStatus
	// DoWithin runs a command within a timeout; errors are the runtime's
	// (region.ErrOverloaded, ...), the command's outcome is in the Reply.
	DoWithin(ctx context.Context, cmd escrow.Command, timeout time.Duration) (escrow.Reply, error)
	// Registry is the region's Prometheus registry: /metrics serves it and
	// the request counter is registered on it.
	Registry() *prometheus.Registry
	// NoteRoutedBug counts a routed answer that reached the API, which
	// DoWithin never returns (holdfast_routed_holds_total{result="bug"}).
	NoteRoutedBug()
	// Events is the region's event log (GET /v1/events); nil when it keeps
	// none.
	Events() *region.EventLog
}

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

// Server is the HTTP API of one region. It is an http.Handler.
type Server struct {
	rt   Runtime
	name string
	log  *slog.Logger

	requestTimeout time.Duration
	maxBodyBytes   int64
	maxLifetime    time.Duration // of a hold; 0: escrow.DefaultMaxLife
	defaultTTL     time.Duration // 0: escrow.DefaultTTL
	maxWait        time.Duration // of a waitlist entry; 0: escrow.DefaultMaxWait

	httpServer string // region.HTTPServerFastHTTP ("", the default) or region.HTTPServerNetHTTP

	// Read limits of both servers: serverReadHeaderTimeout and
	// serverReadTimeout (fields so that tests can shorten them).
	readHeaderTimeout, readTimeout time.Duration

	tokens   *tokenSet // nil: no auth (loopback only)
	requests *prometheus.CounterVec

	mux      *http.ServeMux
	routes   []route
	counters map[string]*routeCounter // by route pattern

	stopStreams chan struct{} // closed when Serve stops: event streams and long polls end
	stopOnce    sync.Once

	imp importState // bulk import (import.go)
}

// New builds the API of rt from the region's configuration: its tokens file
// (loaded here; a bad one is an error), request timeout, body limit and
// hold TTL bounds. It registers holdfast_http_requests_total on
// rt.Registry(), once per registry: two servers of one region share it.
func New(rt Runtime, cfg region.Config) (*Server, error) {
	switch cfg.HTTPServer {
	case "", region.HTTPServerNetHTTP, region.HTTPServerFastHTTP:
	default:
		return nil, fmt.Errorf("httpapi: http_server %q must be %s or %s", cfg.HTTPServer, region.HTTPServerNetHTTP, region.HTTPServerFastHTTP)
	}
	s := &Server{
		httpServer:     cfg.HTTPServer,
		rt:             rt,
		name:           rt.Name(),
		requestTimeout: cfg.RequestTimeout,
		maxBodyBytes:   cfg.MaxBodyBytes,
		maxLifetime:    cfg.Escrow.MaxLifetime,
		defaultTTL:     cfg.Escrow.DefaultTTL,
		maxWait:        cfg.Escrow.MaxWait,
		mux:            http.NewServeMux(),
		stopStreams:    make(chan struct{}),

		readHeaderTimeout: serverReadHeaderTimeout,
		readTimeout:       serverReadTimeout,
	}
	// The region's defaults, which region.Open applies to its own copy.
	if s.requestTimeout <= 0 {
		s.requestTimeout = region.DefaultRequestTimeout
	}
	if s.maxBodyBytes <= 0 {
		s.maxBodyBytes = region.DefaultMaxBodyBytes
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s.log = log.With("region", s.name)
	if cfg.TokensFile != "" {
		ts, err := loadTokens(cfg.TokensFile)
		if err != nil {
			return nil, err
		}
		s.tokens = ts
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "holdfast_http_requests_total", Help: "HTTP requests by route pattern and status code.",
	}, []string{"route", "code"})
	if err := rt.Registry().Register(requests); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, fmt.Errorf("httpapi: register metrics: %w", err)
		}
		requests = are.ExistingCollector.(*prometheus.CounterVec)
	}
	s.requests = requests
	if err := s.initImport(cfg); err != nil {
		return nil, err
	}

	metricsH := promhttp.HandlerFor(rt.Registry(), promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)})
	s.routes = []route{
		{"POST /v1/holds", scopeClient, s.createHold},
		{"GET /v1/holds", scopeRead, s.listHolds},
		{"GET /v1/holds/{id}", scopeClient, s.holdCmd(escrow.CmdGet)},
		{"POST /v1/holds/{id}/confirm", scopeClient, s.holdCmd(escrow.CmdConfirm)},
		{"POST /v1/holds/{id}/release", scopeClient, s.holdCmd(escrow.CmdRelease)},
		{"POST /v1/holds/{id}/extend", scopeClient, s.holdCmd(escrow.CmdExtend)},
		{"GET /v1/waitlist/{id}", scopeClient, s.waitCmd(escrow.CmdWaitGet)},
		{"DELETE /v1/waitlist/{id}", scopeClient, s.waitCmd(escrow.CmdWaitCancel)},
		{"GET /v1/skus/{sku}", scopeRead, s.stock},
		{"POST /v1/skus/{sku}/restock", scopeAdmin, s.adjust(escrow.CmdRestock)},
		{"POST /v1/skus/{sku}/write-off", scopeAdmin, s.adjust(escrow.CmdWriteOff)},
		{"PUT /v1/skus/{sku}/stock", scopeAdmin, s.recount},
		{"POST /v1/stock/import", scopeAdmin, s.importStock},
		{"GET /v1/events", scopeRead, s.events},
		{"GET /metrics", scopeNone, metricsH.ServeHTTP},
		{"GET /healthz", scopeNone, s.healthz},
		{"GET /readyz", scopeNone, s.readyz},
	}
	s.counters = make(map[string]*routeCounter, len(s.routes))
	for _, rt := range s.routes {
		s.counters[rt.pattern] = &routeCounter{pattern: rt.pattern, requests: s.requests}
	}
	for _, rt := range s.routes {
		s.mux.Handle(rt.pattern, s.wrap(rt))
	}
	// Everything else: 405 with Allow when the path exists under another
	// method, 404 otherwise, both as problem documents.
	s.mux.HandleFunc("/", s.fallback)
	return s, nil
}

// StopStreams ends the event streams and long polls being served (Serve
// calls it when it shuts down; a caller serving s itself calls it before
// shutting its http.Server down).
func (s *Server) StopStreams() { s.stopOnce.Do(func() { close(s.stopStreams) }) }

// Routes lists every served "METHOD /pattern".
func (s *Server) Routes() []string {
	out := make([]string, len(s.routes))
	for i, rt := range s.routes {
		out[i] = rt.pattern
	}
	return out
}

func (s *Server) ServeHTTP(w http.ResponseWriter, req *http.Request) { s.mux.ServeHTTP(w, req) }

// routeCounter counts one route's requests by status code: the counter
// of each code is resolved once instead of a label lookup per request.
// Both servers (net/http and fasthttp) count through the same one.
type routeCounter struct {
	pattern  string
	requests *prometheus.CounterVec
	byCode   [600]atomic.Pointer[prometheus.Counter]
}

func (rc *routeCounter) inc(code int) {
	if code < 0 || code >= len(rc.byCode) {
		rc.requests.WithLabelValues(rc.pattern, strconv.Itoa(code)).Inc()
		return
	}
	c := rc.byCode[code].Load()
	if c == nil {
		cc := rc.requests.WithLabelValues(rc.pattern, strconv.Itoa(code))
		c = &cc
		rc.byCode[code].Store(c)
	}
	(*c).Inc()
}

// wrap counts the route's requests and checks its scope.
func (s *Server) wrap(rt route) http.Handler {
	count := s.counters[rt.pattern]
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sw := &statusWriter{ResponseWriter: w, req: req}
		defer func() { count.inc(sw.code) }()
		if rt.scope != scopeNone && s.tokens != nil && !s.authorize(sw, rt.scope) {
			return
		}
		// The request deadline (Config.RequestTimeout) is applied by s.do,
		// without a context and timer per request.
		rt.h(sw, req)
	})
}

var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

func (s *Server) fallback(w http.ResponseWriter, req *http.Request) {
	var allow []string
	for _, m := range probeMethods {
		if m == req.Method {
			continue
		}
		probe := req.Clone(req.Context())
		probe.Method = m
		if _, pat := s.mux.Handler(probe); pat != "/" && pat != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		hdr := allow[0]
		for _, m := range allow[1:] {
			hdr += ", " + m
		}
		w.Header().Set("Allow", hdr)
		s.problem(exch(w, req), http.StatusMethodNotAllowed, ProblemMethod,
			fmt.Sprintf("%s is not allowed on %s (allowed: %s)", req.Method, req.URL.Path, hdr), nil)
		s.requests.WithLabelValues("other", "405").Inc()
		return
	}
	s.problem(exch(w, req), http.StatusNotFound, ProblemRoute, "no route "+req.Method+" "+req.URL.Path, nil)
	s.requests.WithLabelValues("other", "404").Inc()
}

// do runs cmd through the region within the request deadline. When the
// region or the core refuses it, do writes the problem and returns false.
func (s *Server) do(x exchange, cmd escrow.Command) (escrow.Reply, bool) {
	rep, err := s.rt.DoWithin(x.context(), cmd, s.requestTimeout)
	if err != nil {
		s.runtimeProblem(x, err)
		return rep, false
	}
	if rep.Err != nil {
		s.escrowProblem(x, rep.Err)
		return rep, false
	}
	return rep, true
}

// writeJSON writes v as JSON, as json.Encoder writes it (a newline after
// the value).
func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	s.sendJSON(exch(w, nil), status, v)
}

func (s *Server) sendJSON(x exchange, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a type bug gets here: answer it as one, not as a half body.
		s.log.Error("encoding a response", "err", err)
		s.problem(x, http.StatusInternalServerError, escrow.CodeInvariant.String(), "internal error: encoding the answer", nil)
		return
	}
	x.send(status, contentTypeJSON[0], append(b, '\n'))
}

// The limits of both servers (Serve).
const (
	serverReadHeaderTimeout = 5 * time.Second
	serverReadTimeout       = 15 * time.Second
	serverIdleTimeout       = 2 * time.Minute
	serverMaxHeaderBytes    = 32 << 10
)

// Serve serves the API on ln until ctx is done, then shuts the HTTP server
// down gracefully (in-flight requests finish, event streams end). Without
// a tokens file it refuses any listener that is not loopback. The server
// is fasthttp's (fast.go; the default) or, with Config.HTTPServer
// "nethttp", net/http's, with the same limits. The caller closes the region.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.tokens == nil {
		if !isLoopback(ln.Addr()) {
			return fmt.Errorf("region %s: refusing to serve on %s without auth: set tokens_file, or listen on 127.0.0.1 / ::1",
				s.name, ln.Addr())
		}
		s.log.Warn("no tokens file: the API has no auth and listens on loopback only", "addr", ln.Addr().String())
	}
	var (
		serve    func() error
		shutdown func(context.Context) error
	)
	if s.serverKind() == region.HTTPServerFastHTTP {
		srv := s.newFastServer(context.WithoutCancel(ctx))
		serve = func() error { return srv.Serve(ln) }
		shutdown = func(ctx context.Context) error {
			err := srv.ShutdownWithContext(ctx)
			// fasthttp's Shutdown does nothing if its Serve has not yet
			// taken the listener (a context done as Serve starts): that
			// Serve would then accept forever. Closing the listener ends
			// it (its accept loop returns nil on a closed listener).
			_ = ln.Close()
			return err
		}
	} else {
		srv := &http.Server{
			Handler:           s,
			ReadHeaderTimeout: s.readHeaderTimeout,
			ReadTimeout:       s.readTimeout,
			WriteTimeout:      s.requestTimeout + 10*time.Second,
			IdleTimeout:       serverIdleTimeout,
			MaxHeaderBytes:    serverMaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
			BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		}
		shutdown = srv.Shutdown
		serve = func() error { return srv.Serve(ln) }
	}
	errCh := make(chan error, 1)
	go func() { errCh <- serve() }()
	s.log.Info("serving HTTP", "addr", ln.Addr().String(), "server", s.serverKind())
	select {
	case err := <-errCh:
		return fmt.Errorf("region %s: serve: %w", s.name, err)
	case <-ctx.Done():
	}
	s.StopStreams()
	sctx, cancel := context.WithTimeout(context.Background(), s.requestTimeout+5*time.Second)
	defer cancel()
	err := shutdown(sctx)
	// net/http's Serve ends with ErrServerClosed, fasthttp's with nil.
	if serr := <-errCh; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("region %s: shutdown HTTP: %w", s.name, err)
	}
	return nil
}

// serverKind names the HTTP server Serve runs.
func (s *Server) serverKind() string {
	if s.httpServer == "" {
		return region.HTTPServerFastHTTP // the default (issue 22: a quarter less CPU per hold)
	}
	return s.httpServer
}
