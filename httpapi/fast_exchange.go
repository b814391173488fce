package httpapi

import (
	"context"
	"sync"

	"github.com/valyala/fasthttp"
)

// fastExchange is fasthttp's exchange: the request and response of a
// RequestCtx, pooled (one per request in flight).
type fastExchange struct {
	ctx  *fasthttp.RequestCtx
	base context.Context
	code int
	buf  []byte // setHeaderJoined's, kept with the pooled exchange
}

var fastExchangePool = sync.Pool{New: func() any { return new(fastExchange) }}

func acquireFastExchange(ctx *fasthttp.RequestCtx, base context.Context) *fastExchange {
	x := fastExchangePool.Get().(*fastExchange)
	x.ctx, x.base, x.code = ctx, base, 0
	return x
}

func releaseFastExchange(x *fastExchange) {
	x.ctx, x.base = nil, nil
	fastExchangePool.Put(x)
}

func (x *fastExchange) context() context.Context { return x.base }
func (x *fastExchange) path() string             { return string(x.ctx.Path()) }
func (x *fastExchange) header(name string) string {
	return string(x.ctx.Request.Header.Peek(name))
}
func (x *fastExchange) headerN(name string) (string, int) {
	vs := x.ctx.Request.Header.PeekAll(name)
	if len(vs) == 0 {
		return "", 0
	}
	return string(vs[0]), len(vs)
}

// headerIs compares in place, not copied. Content-Type, which every body
// is checked for, fasthttp keeps apart: read there, without Peek's copy
// and normalization of the name.
func (x *fastExchange) headerIs(name, v string) bool {
	if name == "Content-Type" {
		return string(x.ctx.Request.Header.ContentType()) == v
	}
	return string(x.ctx.Request.Header.Peek(name)) == v
}
func (x *fastExchange) setHeader(name, value string) { x.ctx.Response.Header.Set(name, value) }

// setHeaderJoined: fasthttp copies the value into the response. Location,
// every hold's, is set under its canonical name as is (SetBytesV would
// copy and normalize the name on every request).
func (x *fastExchange) setHeaderJoined(name, prefix, rest string) {
	x.buf = append(append(x.buf[:0], prefix...), rest...)
	if name == "Location" {
		x.ctx.Response.Header.SetCanonical(headerLocation, x.buf)
		return
	}
	x.ctx.Response.Header.SetBytesV(name, x.buf)
}

// Canonical header names and values set on every response, as fasthttp's
// Set would normalize them.
var (
	headerLocation     = []byte("Location")
	headerCacheControl = []byte("Cache-Control")
	valueNoStore       = []byte("no-store")
)

func (x *fastExchange) respHeader(name string) string {
	return string(x.ctx.Response.Header.Peek(name))
}

// body is the body fasthttp has read (HeaderReceived's limit, normally the
// same max): valid until the request ends, not copied.
func (x *fastExchange) body(_ *[]byte, max int64) ([]byte, error) {
	if int64(x.ctx.Request.Header.ContentLength()) > max {
		return nil, errBodyTooLarge
	}
	b := x.ctx.PostBody()
	if int64(len(b)) > max {
		return nil, errBodyTooLarge
	}
	return b, nil
}

func (x *fastExchange) send(status int, contentType string, body []byte) {
	x.code = status
	x.ctx.SetStatusCode(status)
	x.ctx.Response.Header.SetContentType(contentType)
	x.ctx.Response.Header.SetCanonical(headerCacheControl, valueNoStore)
	x.ctx.SetBody(body) // copies: body may be a pooled buffer
}
