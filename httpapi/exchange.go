package httpapi

import (
	"context"
	"errors"
	"net/http"
)

// exchange is one request and its answer as the hold routes see them. The
// net/http server (statusWriter) and the fasthttp server (fastExchange)
// implement it, so that the decode → command → reply → encode logic of the
// hot routes, the problem documents and the auth check are written once
// and served identically by both (config http_server).
type exchange interface {
	// context is the context of the region call (DoWithin).
	context() context.Context
	// path is the request's path (the problem's instance).
	path() string
	// header is the request header's first value ("" when absent);
	// headerN is it with how many times the header was given (one look-up
	// on fasthttp, which normalizes the name at each).
	header(name string) string
	headerN(name string) (first string, n int)
	// headerIs reports whether the header's first value is exactly v,
	// without copying it (fasthttp's header() copies).
	headerIs(name, v string) bool
	// body reads the request body into *bp (which it may grow) up to max
	// bytes; a longer body is errBodyTooLarge.
	body(bp *[]byte, max int64) ([]byte, error)
	// setHeader sets a response header; respHeader reads one back.
	// setHeaderJoined sets it to prefix+rest (fasthttp joins them in a
	// reused buffer instead of a new string per request).
	setHeader(name, value string)
	setHeaderJoined(name, prefix, rest string)
	respHeader(name string) string
	// send writes the status, Content-Type, Cache-Control: no-store and
	// body, which must hold the whole answer.
	send(status int, contentType string, body []byte)
}

// errBodyTooLarge is exchange.body's answer to a body over the limit.
var errBodyTooLarge = errors.New("request body too large")

// exch is the exchange of a net/http request: the *statusWriter that wrap
// made when w is one (no allocation on the routes' path), else a new one
// (the fallback route and tests calling a handler directly).
func exch(w http.ResponseWriter, req *http.Request) exchange {
	if sw, ok := w.(*statusWriter); ok && (req == nil || sw.req == req) {
		return sw
	}
	return &statusWriter{ResponseWriter: w, req: req}
}

// statusWriter is net/http's exchange: it records the status for the
// request counter.
type statusWriter struct {
	http.ResponseWriter
	req  *http.Request
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (event streams
// flush and lift the write deadline through it).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) context() context.Context { return s.req.Context() }
func (s *statusWriter) path() string             { return s.req.URL.Path }
func (s *statusWriter) header(name string) string {
	return s.req.Header.Get(name)
}
func (s *statusWriter) headerN(name string) (string, int) {
	vs := s.req.Header.Values(name)
	if len(vs) == 0 {
		return "", 0
	}
	return vs[0], len(vs)
}
func (s *statusWriter) headerIs(name, v string) bool {
	return s.req.Header.Get(name) == v
}
func (s *statusWriter) setHeaderJoined(name, prefix, rest string) {
	s.Header().Set(name, prefix+rest) // net/http keeps the string: one allocation either way
}
func (s *statusWriter) setHeader(name, value string) {
	s.Header().Set(name, value)
}
func (s *statusWriter) respHeader(name string) string { return s.Header().Get(name) }

func (s *statusWriter) body(bp *[]byte, max int64) ([]byte, error) {
	if s.req.ContentLength > max {
		return nil, errBodyTooLarge
	}
	buf, err := readAllInto((*bp)[:0], http.MaxBytesReader(s.ResponseWriter, s.req.Body, max))
	*bp = buf[:0]
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errBodyTooLarge
	}
	return buf, err
}

// Shared header values: net/http only reads them (cap == len, so an
// Add elsewhere copies instead of writing into them).
var (
	contentTypeJSON    = []string{"application/json"}
	contentTypeProblem = []string{"application/problem+json"}
	cacheNoStore       = []string{"no-store"}
)

func (s *statusWriter) send(status int, contentType string, body []byte) {
	hdr := s.Header()
	switch contentType {
	case contentTypeJSON[0]:
		hdr["Content-Type"] = contentTypeJSON
	case contentTypeProblem[0]:
		hdr["Content-Type"] = contentTypeProblem
	default:
		hdr.Set("Content-Type", contentType)
	}
	hdr["Cache-Control"] = cacheNoStore
	s.WriteHeader(status)
	// A failed write is the client's going; the status is counted.
	_, _ = s.Write(body)
}
