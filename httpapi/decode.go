package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync"
	"time"

	"github.com/holdfast-io/holdfast/api"
)

// decodeBody reads a JSON body into v: content type application/json,
// at most MaxBodyBytes, no unknown fields, no key twice in one object,
// nothing after the value. With optional set, an empty body leaves v as it
// is. A *createBody (or *api.CreateHoldRequest) is parsed by
// parseCreateFast when it can. It writes the problem and returns false on
// failure.
func (s *Server) decodeBody(x exchange, v any, optional bool) bool {
	bp := jsonBufPool.Get().(*[]byte)
	defer jsonBufPool.Put(bp)
	buf, err := x.body(bp, s.maxBodyBytes)
	if err != nil {
		if errors.Is(err, errBodyTooLarge) {
			s.bodyTooLarge(x)
			return false
		}
		s.badRequest(x, "reading body: "+err.Error())
		return false
	}
	if len(bytes.TrimSpace(buf)) == 0 {
		if optional {
			return true
		}
		s.badRequest(x, "a JSON body is required")
		return false
	}
	// The common spelling is checked in place; any other (parameters, case,
	// spaces) goes through mime.ParseMediaType, which allocates a map.
	if !x.headerIs("Content-Type", "application/json") {
		ct := x.header("Content-Type")
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			s.problem(x, http.StatusUnsupportedMediaType, ProblemMediaType,
				fmt.Sprintf("content type must be application/json, got %q", ct), nil)
			return false
		}
	}
	var lastTTL *string
	if cb, ok := v.(*createBody); ok {
		v, lastTTL = &cb.req, &cb.lastTTL
	}
	if cr, ok := v.(*api.CreateHoldRequest); ok {
		if parseCreateFast(buf, cr, lastTTL) {
			return true
		}
		*cr = api.CreateHoldRequest{} // encoding/json decodes from scratch
	}
	if k := duplicateKey(buf); k != "" {
		// Only here: the fast parser never accepts a repeated key.
		s.badRequest(x, fmt.Sprintf("malformed JSON body: duplicate key %q", k))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(buf))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.badRequest(x, "malformed JSON body: "+err.Error())
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		s.badRequest(x, "malformed JSON body: data after the JSON value")
		return false
	}
	return true
}

// createBody is a pooled create body: the request decoded into it, whose
// items' array the next request reuses, and the last ttl string parsed
// (parseCreateFast reuses it for an equal ttl), and the last ttl whose
// syntax parsed, with its duration (parseBodyTTL). Nothing in it outlives
// the request: the command copies the items into lines of its own.
type createBody struct {
	req     api.CreateHoldRequest
	lastTTL string

	ttlText   string
	ttlDur    time.Duration
	ttlParsed bool // ttlText parsed as ttlDur
}

var createBodyPool = sync.Pool{New: func() any { return new(createBody) }}

func acquireCreateBody() *createBody { return createBodyPool.Get().(*createBody) }

// releaseCreateBody empties b (its items' array kept, cleared) and pools it.
func releaseCreateBody(b *createBody) {
	clear(b.req.Items)
	b.req = api.CreateHoldRequest{Items: b.req.Items[:0]}
	createBodyPool.Put(b)
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
