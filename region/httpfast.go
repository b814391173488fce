package region

// Hand-written JSON for the hot path of the HTTP API (POST /v1/holds):
// the hold reply and the create body. Both produce or accept exactly what
// encoding/json does; anything outside the common shape falls back to
// encoding/json, so that output, accepted input and error messages stay
// those of the standard library.

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

var jsonBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// jsonSafe reports whether s can be written between quotes as it is, as
// json.Marshal would (printable ASCII without '"', '\\' and the HTML
// characters that encoding/json escapes).
func jsonSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

func appendJSONString(b []byte, s string) []byte {
	if jsonSafe(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

func appendJSONTime(b []byte, t time.Time) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false // json.Marshal fails on these; let it say so
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}

// appendHoldJSON appends the JSON of holdJSON(h) plus a newline, exactly as
// json.NewEncoder(w).Encode(holdJSON(h)) writes it. It returns false when h
// has metadata or a time json.Marshal refuses (the caller falls back).
func appendHoldJSON(b []byte, h *escrow.Hold) ([]byte, bool) {
	if h.Meta != "" {
		return b, false
	}
	region, _ := escrow.OwnerOf(h.ID)
	b = append(b, `{"id":`...)
	b = appendJSONString(b, h.ID)
	b = append(b, `,"region":`...)
	b = appendJSONString(b, region)
	b = append(b, `,"state":`...)
	b = appendJSONString(b, h.State.String())
	b = append(b, `,"items":[`...)
	for i, l := range h.Lines {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"sku":`...)
		b = appendJSONString(b, l.SKU)
		b = append(b, `,"qty":`...)
		b = strconv.AppendUint(b, l.Qty, 10)
		b = append(b, '}')
	}
	b = append(b, `],"created_at":`...)
	ok := true
	var ok1 bool
	b, ok1 = appendJSONTime(b, h.Created.UTC())
	ok = ok && ok1
	b = append(b, `,"expires_at":`...)
	b, ok1 = appendJSONTime(b, h.Expires.UTC())
	ok = ok && ok1
	b = append(b, `,"max_expires_at":`...)
	b, ok1 = appendJSONTime(b, h.MaxExpires.UTC())
	ok = ok && ok1
	b = append(b, `,"updated_at":`...)
	b, ok1 = appendJSONTime(b, h.Updated.UTC())
	ok = ok && ok1
	b = append(b, "}\n"...)
	return b, ok
}

// writeHold writes a hold reply: the hand-written JSON when it applies,
// else writeJSON.
func (a *api) writeHold(w http.ResponseWriter, status int, h *escrow.Hold) bool {
	bp := jsonBufPool.Get().(*[]byte)
	defer jsonBufPool.Put(bp)
	b, ok := appendHoldJSON((*bp)[:0], h)
	*bp = b[:0]
	if !ok {
		return false
	}
	hdr := w.Header()
	hdr["Content-Type"] = contentTypeJSON
	hdr["Cache-Control"] = cacheNoStore
	w.WriteHeader(status)
	if _, err := w.Write(b); err != nil {
		a.r.log.Debug("writing response", "err", err)
	}
	return true
}

// Shared header values: net/http only reads them (cap == len, so an
// Add elsewhere copies instead of writing into them).
var (
	contentTypeJSON = []string{"application/json"}
	cacheNoStore    = []string{"no-store"}
)
