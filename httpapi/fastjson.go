package httpapi

// Hand-written JSON for the hot path of the HTTP API (POST /v1/holds):
// the hold reply and the create body. Both produce or accept exactly what
// encoding/json does; anything outside the common shape falls back to
// encoding/json, so that output, accepted input and error messages stay
// those of the standard library.

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/holdfast-io/holdfast/api"
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
	if t.Location() == time.UTC {
		b = appendRFC3339NanoUTC(b, t)
	} else {
		b = t.AppendFormat(b, time.RFC3339Nano)
	}
	return append(b, '"'), true
}

// appendRFC3339NanoUTC appends t, a UTC time of a year in [0, 9999], as
// t.AppendFormat(b, time.RFC3339Nano) does (the fraction's trailing zeros
// trimmed, none when it is zero), with the date computed from the day
// number directly: every hold reply writes four times, and AppendFormat's
// general path was a sixth of the hold handler's CPU.
func appendRFC3339NanoUTC(b []byte, t time.Time) []byte {
	const secsPerDay = 86400
	sec := t.Unix()
	days := sec / secsPerDay
	rem := sec % secsPerDay
	if rem < 0 {
		days, rem = days-1, rem+secsPerDay
	}
	// Civil date from days since 1970-01-01 (proleptic Gregorian; H. Hinnant's
	// days_from_civil inverse), in 400-year eras from 0000-03-01.
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era-- // floor division (years before 0000-03-01 are refused by the caller)
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if mp >= 10 {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+rem/36000), byte('0'+rem/3600%10), ':',
		byte('0'+rem%3600/600), byte('0'+rem%3600/60%10), ':',
		byte('0'+rem%60/10), byte('0'+rem%10))
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i >= 1; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, 'Z')
}

// appendHoldJSON appends the JSON of holdJSON(h) plus a newline, exactly as
// json.NewEncoder(w).Encode(holdJSON(h)) writes it. It returns false when h
// has metadata, a cart, asked lines or a time json.Marshal refuses (the caller falls back).
func appendHoldJSON(b []byte, h *escrow.Hold) ([]byte, bool) {
	if h.Meta != "" || h.Cart != "" || h.Asked != nil {
		return b, false
	}
	for i := range h.Lines {
		if escrow.HasLocation(h.Lines[i].SKU) {
			return b, false // items with allocations: holdJSON
		}
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
// else the JSON of holdJSON.
func (s *Server) writeHold(x exchange, status int, h *escrow.Hold) {
	bp := jsonBufPool.Get().(*[]byte)
	defer jsonBufPool.Put(bp)
	b, ok := appendHoldJSON((*bp)[:0], h)
	*bp = b[:0]
	if !ok {
		s.sendJSON(x, status, holdJSON(h))
		return
	}
	x.send(status, contentTypeJSON[0], b)
}

// parseCreateFast parses the common shape of a create body,
// {"items":[{"sku":"..","qty":N},..],"ttl":".."} with JSON whitespace
// anywhere, into body. It returns false for anything else (escapes or
// non-ASCII in strings, other or repeated keys, metadata, nulls, other
// number forms, trailing data, malformed JSON): the caller then decodes
// with encoding/json, which accepts or rejects it with its own message.
// What it accepts, encoding/json decodes to the same value. Keys are
// compared in place and no closure is made. body.Items' array is reused
// (cleared, then appended to): a pooled body allocates no new one. The
// ttl is only parsed, never kept: when it equals *lastTTL (the previous
// body's, on a pooled body) that string is reused instead of copied
// (lastTTL may be nil). So the only allocation of a pooled body is each
// SKU's string, which the command keeps.
func parseCreateFast(buf []byte, body *api.CreateHoldRequest, lastTTL *string) bool {
	p := fastParser{b: buf}
	if !p.byte('{') {
		return false
	}
	seenItems, seenTTL := false, false
	for more := !p.peek('}'); more; more = p.byte(',') {
		key, ok := p.raw()
		if !ok || !p.byte(':') {
			return false
		}
		switch {
		case string(key) == "items" && !seenItems:
			seenItems = true
			ok = p.items(body)
		case string(key) == "ttl" && !seenTTL:
			seenTTL = true
			var ttl []byte
			ttl, ok = p.raw()
			switch {
			case lastTTL != nil && string(ttl) == *lastTTL: // compared in place
				body.TTL = *lastTTL
			default:
				body.TTL = string(ttl)
				if lastTTL != nil {
					*lastTTL = body.TTL
				}
			}
		default:
			ok = false
		}
		if !ok {
			return false
		}
	}
	if !p.byte('}') {
		return false
	}
	p.ws()
	return p.i == len(p.b)
}

type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// byte consumes c after optional whitespace.
func (p *fastParser) byte(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *fastParser) peek(c byte) bool {
	p.ws()
	return p.i < len(p.b) && p.b[p.i] == c
}

// raw reads a string of printable ASCII without escapes and returns its
// bytes in place (valid as long as the body).
func (p *fastParser) raw() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			p.i++
			return p.b[start : p.i-1], true
		}
		if c < 0x20 || c >= 0x80 || c == '\\' {
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// str is raw as a string of its own.
func (p *fastParser) str() (string, bool) {
	b, ok := p.raw()
	return string(b), ok
}

// uint reads a JSON integer that fits a uint64: "0" or [1-9][0-9]*.
func (p *fastParser) uint() (uint64, bool) {
	p.ws()
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	digits := p.b[start:p.i]
	if len(digits) == 0 || len(digits) > 19 || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	var v uint64
	for _, d := range digits {
		v = v*10 + uint64(d-'0')
	}
	return v, true
}

func (p *fastParser) items(body *api.CreateHoldRequest) bool {
	if !p.byte('[') {
		return false
	}
	clear(body.Items) // a pooled body's: keep no SKU of the last request
	body.Items = body.Items[:0]
	if body.Items == nil {
		body.Items = make([]api.Item, 0, 4) // as encoding/json: [] is not nil
	}
	if p.byte(']') {
		return true
	}
	for {
		if len(body.Items) > escrow.MaxLines {
			return false // let encoding/json decode the whole, longer list
		}
		it, ok := p.item()
		if !ok {
			return false
		}
		body.Items = append(body.Items, it)
		if p.byte(',') {
			continue
		}
		return p.byte(']')
	}
}

// item reads {"sku":"..","qty":N} (either key at most once, in any order).
func (p *fastParser) item() (api.Item, bool) {
	var it api.Item
	if !p.byte('{') {
		return it, false
	}
	seenSKU, seenQty := false, false
	for more := !p.peek('}'); more; more = p.byte(',') {
		key, ok := p.raw()
		if !ok || !p.byte(':') {
			return it, false
		}
		switch {
		case string(key) == "sku" && !seenSKU:
			seenSKU = true
			it.SKU, ok = p.str()
		case string(key) == "qty" && !seenQty:
			seenQty = true
			it.Qty, ok = p.uint()
		default:
			ok = false
		}
		if !ok {
			return it, false
		}
	}
	return it, p.byte('}')
}
