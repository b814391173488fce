package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/holdfast-io/holdfast/api"
)

// decodeBody reads a JSON body into v: content type application/json,
// at most MaxBodyBytes, no unknown fields, no key twice in one object,
// nothing after the value. With
// optional set, an empty body leaves v as it is. It writes the problem and
// returns false on failure.
func (s *Server) decodeBody(w http.ResponseWriter, req *http.Request, v any, optional bool) bool {
	bp := jsonBufPool.Get().(*[]byte)
	defer jsonBufPool.Put(bp)
	return s.decodeBodyBuf(w, req, v, optional, bp)
}

// decodeBodyBuf is decodeBody reading into *bp (which it may grow). A
// *api.CreateHoldRequest is parsed by parseCreateFast when it can.
func (s *Server) decodeBodyBuf(w http.ResponseWriter, req *http.Request, v any, optional bool, bp *[]byte) bool {
	if req.ContentLength > s.maxBodyBytes {
		s.problem(w, req, http.StatusRequestEntityTooLarge, ProblemTooLarge,
			fmt.Sprintf("body must be at most %d bytes", s.maxBodyBytes), nil)
		return false
	}
	body := http.MaxBytesReader(w, req.Body, s.maxBodyBytes)
	buf, err := readAllInto((*bp)[:0], body)
	*bp = buf[:0]
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.problem(w, req, http.StatusRequestEntityTooLarge, ProblemTooLarge,
				fmt.Sprintf("body must be at most %d bytes", s.maxBodyBytes), nil)
			return false
		}
		s.badRequest(w, req, "reading body: "+err.Error())
		return false
	}
	if len(bytes.TrimSpace(buf)) == 0 {
		if optional {
			return true
		}
		s.badRequest(w, req, "a JSON body is required")
		return false
	}
	ct := req.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		s.problem(w, req, http.StatusUnsupportedMediaType, ProblemMediaType,
			fmt.Sprintf("content type must be application/json, got %q", ct), nil)
		return false
	}
	if cr, ok := v.(*api.CreateHoldRequest); ok {
		if parseCreateFast(buf, cr) {
			return true
		}
		*cr = api.CreateHoldRequest{} // encoding/json decodes from scratch
	}
	if k := duplicateKey(buf); k != "" {
		// Only here: the fast parser never accepts a repeated key.
		s.badRequest(w, req, fmt.Sprintf("malformed JSON body: duplicate key %q", k))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(buf))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.badRequest(w, req, "malformed JSON body: "+err.Error())
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		s.badRequest(w, req, "malformed JSON body: data after the JSON value")
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
