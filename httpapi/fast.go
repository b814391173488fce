package httpapi

// The API on github.com/valyala/fasthttp (http_server: fasthttp): the hold
// routes are served natively, through the same exchange-based handlers as
// on net/http (holds.go); every other route is the net/http handler run
// through fasthttpadaptor. Issue 22: net/http's bare request floor alone is
// near Redis's whole hold; fasthttp's is about half of it.

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/holdfast-io/holdfast/escrow"
)

// fastRoute is a hold route served natively on fasthttp.
type fastRoute struct {
	count *routeCounter
	kind  escrow.CommandKind // escrow.CmdHold: POST /v1/holds
}

// fastRoutes are the natively served routes, resolved once per server.
type fastRoutes struct {
	create, get, confirm, release, extend fastRoute
}

func (s *Server) newFastRoutes() *fastRoutes {
	r := func(pattern string, kind escrow.CommandKind) fastRoute {
		return fastRoute{count: s.counters[pattern], kind: kind}
	}
	return &fastRoutes{
		create:  r("POST /v1/holds", escrow.CmdHold),
		get:     r("GET /v1/holds/{id}", escrow.CmdGet),
		confirm: r("POST /v1/holds/{id}/confirm", escrow.CmdConfirm),
		release: r("POST /v1/holds/{id}/release", escrow.CmdRelease),
		extend:  r("POST /v1/holds/{id}/extend", escrow.CmdExtend),
	}
}

var (
	holdsPath   = []byte("/v1/holds")
	holdsPrefix = []byte("/v1/holds/")
	importPath  = []byte("/v1/stock/import")
)

// match finds the native route of a request and the hold id in its path,
// or nil: the request then goes to the net/http handler, which serves it
// (or answers 404/405) as the net/http server would. Only a path that
// fasthttp did not have to decode or normalize is matched here, so that a
// hold id means the same on both servers.
func (fr *fastRoutes) match(ctx *fasthttp.RequestCtx) (*fastRoute, []byte) {
	path := ctx.Path()
	if !bytes.Equal(path, ctx.URI().PathOriginal()) {
		return nil, nil
	}
	post := ctx.IsPost()
	if bytes.Equal(path, holdsPath) {
		if post {
			return &fr.create, nil
		}
		return nil, nil
	}
	rest, ok := bytes.CutPrefix(path, holdsPrefix)
	if !ok {
		return nil, nil
	}
	id, verb, sub := bytes.Cut(rest, []byte{'/'})
	if len(id) == 0 {
		return nil, nil
	}
	if !sub {
		if ctx.IsGet() {
			return &fr.get, id
		}
		return nil, nil
	}
	if !post {
		return nil, nil
	}
	switch string(verb) { // no allocation: the compiler compares in place
	case "confirm":
		return &fr.confirm, id
	case "release":
		return &fr.release, id
	case "extend":
		return &fr.extend, id
	}
	return nil, nil
}

// fastHandler is the fasthttp handler of the API. base is the context of
// every region call: not the request's, which fasthttp cancels when it
// shuts down, so that in-flight requests finish as on net/http.
func (s *Server) fastHandler(base context.Context, routes *fastRoutes) fasthttp.RequestHandler {
	slow := fasthttpadaptor.NewFastHTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.ServeHTTP(w, detach(req.WithContext(base)))
	}))
	return func(ctx *fasthttp.RequestCtx) {
		rt, id := routes.match(ctx)
		if rt == nil {
			slow(ctx)
			return
		}
		x := acquireFastExchange(ctx, base)
		defer releaseFastExchange(x)
		defer func() { rt.count.inc(x.code) }()
		if s.tokens != nil && !s.authorize(x, scopeClient) {
			return
		}
		if rt.kind == escrow.CmdHold {
			s.createHoldX(x)
			return
		}
		s.holdCmdX(x, rt.kind, string(id))
	}
}

// fastRequestConfig is fasthttp's per-request limits, read from the header
// before the body (fasthttp reads the whole body before the handler): an
// import gets import_max_bytes and its long read timeout, and only when
// its token may import, so that no one else makes the region buffer
// 64 MiB; every other request gets max_body_bytes (the server's default).
func (s *Server) fastRequestConfig(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	uri := h.RequestURI()
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	// The server's ReadTimeout is net/http's header timeout (newFastServer);
	// a body gets the rest of net/http's whole-request read timeout. A
	// request without a body keeps the deadline it has (one timer change
	// less per request).
	body := fasthttp.RequestConfig{}
	if h.ContentLength() != 0 {
		body.ReadTimeout = s.readTimeout - s.readHeaderTimeout
	}
	if !bytes.Equal(uri, importPath) || !bytes.Equal(h.Method(), []byte(http.MethodPost)) {
		return body
	}
	if s.tokens != nil {
		p := s.tokens.authenticate(string(h.Peek("Authorization")))
		if p == nil || !p.admin {
			return body // its 401/403 needs no body (fastError)
		}
	}
	return fasthttp.RequestConfig{MaxRequestBodySize: int(s.imp.maxBytes), ReadTimeout: importReadTimeout}
}

// fastError answers a request fasthttp could not read: a body over its
// limit as the same 413 problem as net/http's, a header over the limit
// as 431 and a read timeout as 408 (net/http's texts), anything else as a
// 400 problem. The answer is counted under its hold route, or as route
// "other" (net/http counts a delegated route's 413 under the route).
func (s *Server) fastError(ctx *fasthttp.RequestCtx, err error, routes *fastRoutes) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	code := 0
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		x := acquireFastExchange(ctx, nil)
		isImport := bytes.Equal(ctx.Path(), importPath)
		switch {
		case !isImport:
			s.bodyTooLarge(x)
		// net/http checks the import's token before it reads the body: a
		// token that may not import gets its 401/403 here too, not the 413
		// of the limit fastRequestConfig gave it.
		case s.tokens == nil || s.authorize(x, scopeAdmin):
			s.importTooLarge(x)
		}
		code = x.code
		releaseFastExchange(x)
		if isImport && ctx.IsPost() {
			s.counters["POST /v1/stock/import"].inc(code) // as net/http counts it
			return
		}
	case errors.As(err, &small):
		code = http.StatusRequestHeaderFieldsTooLarge
		ctx.Error("431 Request Header Fields Too Large", code)
	case errors.As(err, &ne) && ne.Timeout():
		code = http.StatusRequestTimeout
		ctx.Error("408 Request Timeout", code)
	default:
		x := acquireFastExchange(ctx, nil)
		s.badRequest(x, "malformed HTTP request: "+err.Error())
		code = x.code
		releaseFastExchange(x)
	}
	if rt, _ := routes.match(ctx); rt != nil {
		rt.count.inc(code)
		return
	}
	s.requests.WithLabelValues("other", strconv.Itoa(code)).Inc()
}

// newFastServer is the fasthttp server of the API, with net/http's limits
// (see Serve). fasthttp has no header-only timeout: its ReadTimeout, which
// runs from a request's first byte, is set to net/http's header timeout,
// and fastRequestConfig gives a body the rest of the 15 s once the header
// is in (header ≤ 5 s, whole request ≤ 15 s, as on net/http). Its read
// buffer is the header limit.
func (s *Server) newFastServer(base context.Context) *fasthttp.Server {
	routes := s.newFastRoutes()
	return &fasthttp.Server{
		Handler:               s.fastHandler(base, routes),
		ErrorHandler:          func(ctx *fasthttp.RequestCtx, err error) { s.fastError(ctx, err, routes) },
		HeaderReceived:        s.fastRequestConfig,
		ReadTimeout:           s.readHeaderTimeout,
		WriteTimeout:          s.requestTimeout + 10*time.Second,
		IdleTimeout:           serverIdleTimeout,
		ReadBufferSize:        serverMaxHeaderBytes,
		MaxRequestBodySize:    int(s.maxBodyBytes),
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true, // as net/http: no Content-Type on an empty body
		CloseOnShutdown:       true, // keep-alive clients learn of the shutdown
		Logger:                slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// detach gives req strings of its own. fasthttpadaptor lends the method,
// path, query and header strings from fasthttp's connection buffer, which
// the next request on the connection overwrites; a handler that keeps one
// (a SKU from the path becomes a key of the region's state) would see it
// change under it. req is a shallow copy (WithContext): it is changed in
// place. The body is read by every handler into a buffer of its own.
func detach(req *http.Request) *http.Request {
	req.Method = strings.Clone(req.Method)
	req.Proto = strings.Clone(req.Proto)
	req.Host = strings.Clone(req.Host)
	req.RequestURI = strings.Clone(req.RequestURI)
	u := *req.URL
	u.Scheme, u.Opaque, u.Host = strings.Clone(u.Scheme), strings.Clone(u.Opaque), strings.Clone(u.Host)
	u.Path, u.RawPath = strings.Clone(u.Path), strings.Clone(u.RawPath)
	u.RawQuery, u.Fragment, u.RawFragment = strings.Clone(u.RawQuery), strings.Clone(u.Fragment), strings.Clone(u.RawFragment)
	u.User = nil // a request target has none (RFC 9112 3.2)
	req.URL = &u
	h := make(http.Header, len(req.Header))
	for k, vv := range req.Header {
		c := make([]string, len(vv))
		for i, v := range vv {
			c[i] = strings.Clone(v)
		}
		h[strings.Clone(k)] = c
	}
	req.Header = h
	te := make([]string, len(req.TransferEncoding))
	for i, v := range req.TransferEncoding {
		te[i] = strings.Clone(v)
	}
	req.TransferEncoding = te
	return req
}
