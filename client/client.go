// Package client is a small Go client for the holdfast region HTTP API
// (docs/openapi.yaml). The `holdfast` client commands, the demo's load
// generator and tests use it.
//
// Every method returns the decoded answer with its raw JSON body, or an
// *Error carrying the RFC 9457 problem the region answered with. Request
// bodies and response bodies are bounded so that a misbehaving server cannot
// make the client allocate without limit.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/holdfast-io/holdfast/api"
)

// Defaults and limits.
const (
	// DefaultURL is the region a client talks to when none is given: the
	// address of configs/local/eu.yaml.
	DefaultURL = "http://127.0.0.1:8080"
	// DefaultTimeout bounds one request, including a hold that waits for a
	// borrow (50 ms by default on the server).
	DefaultTimeout = 10 * time.Second
	// MaxRequestBytes bounds a request body. A cart of the maximum 100 lines
	// with 128-byte SKUs is about 20 KiB; regions refuse more than 64 KiB by
	// default.
	MaxRequestBytes = 1 << 20
	// DefaultMaxResponseBytes bounds a response body read into memory.
	DefaultMaxResponseBytes = 4 << 20
)

// Options configure a Client. Zero values take the defaults.
type Options struct {
	// Token is sent as "Authorization: Bearer <token>" when not empty.
	Token string
	// Timeout bounds each request (DefaultTimeout). A deadline on the
	// context passed to a method also applies.
	Timeout time.Duration
	// HTTPClient replaces the default client (a shared transport that keeps
	// up to 256 idle connections to the region).
	HTTPClient *http.Client
	// MaxResponseBytes bounds response bodies (DefaultMaxResponseBytes).
	MaxResponseBytes int64
	// UserAgent defaults to "holdfast-client".
	UserAgent string
}

// Client talks to one region. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	token   string
	timeout time.Duration
	hc      *http.Client
	maxResp int64
	ua      string
}

var defaultTransport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Load generators run hundreds of concurrent shoppers against one
	// region: without this, most connections would be closed after use.
	t.MaxIdleConnsPerHost = 256
	t.MaxIdleConns = 1024
	return t
}()

// New returns a client for the region at baseURL (scheme, host and an
// optional path prefix, e.g. "http://127.0.0.1:8080").
func New(baseURL string, opt Options) (*Client, error) {
	if baseURL == "" {
		baseURL = DefaultURL
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: region URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("client: region URL %q must start with http:// or https://", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("client: region URL %q has no host", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: region URL %q must not have a query or fragment", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	if strings.ContainsAny(opt.Token, "\r\n") {
		return nil, errors.New("client: token contains a line break")
	}
	c := &Client{base: u, token: opt.Token, timeout: opt.Timeout, hc: opt.HTTPClient,
		maxResp: opt.MaxResponseBytes, ua: opt.UserAgent}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.hc == nil {
		c.hc = &http.Client{Transport: defaultTransport}
	}
	if c.maxResp <= 0 {
		c.maxResp = DefaultMaxResponseBytes
	}
	if c.ua == "" {
		c.ua = "holdfast-client"
	}
	return c, nil
}

// URL returns the region's base URL.
func (c *Client) URL() string { return c.base.String() }

// Error is a non-2xx answer of the region: an RFC 9457 problem when the
// region sent one, otherwise the status and the start of the body. The
// problem's fields (Status, Type, Title, Detail, Region, SKU, Available,
// Owner, ...) are those of api.Problem, the type the server writes.
type Error struct {
	api.Problem
	// RetryAfter is the server's Retry-After (503 overload, owner
	// unreachable), 0 when absent.
	RetryAfter time.Duration `json:"-"`
	// Body is the raw response body (bounded).
	Body []byte `json:"-"`
}

func (e *Error) Error() string {
	msg := e.Detail
	if msg == "" {
		msg = e.Title
	}
	if msg == "" {
		msg = strings.TrimSpace(string(e.Body))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
	}
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), msg)
}

// Code returns the last segment of the problem type ("insufficient-stock",
// "not-found", ...), or "" when the answer was not a problem.
func (e *Error) Code() string {
	t := strings.TrimRight(e.Type, "/")
	if i := strings.LastIndexAny(t, "/#:"); i >= 0 {
		return t[i+1:]
	}
	return t
}

// IsCode reports whether err is an *Error whose Code is code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code() == code
}

// StatusOf returns the HTTP status of an *Error in err's chain, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// HoldRequest asks for a hold on every item (all or nothing). It is the
// Go form of api.CreateHoldRequest: a TTL as a duration and the
// Idempotency-Key header beside the body.
type HoldRequest struct {
	Items []api.Item
	// TTL is the hold's lifetime; 0 takes the region's default (10m).
	TTL time.Duration
	// IdempotencyKey, when set, makes retries return the original hold.
	IdempotencyKey string
	// Metadata is client metadata kept with the hold: any JSON value, at
	// most 1 KiB in compact form. nil sends none.
	Metadata json.RawMessage
	// Wait, when positive, lets a sold-out hold join the region's waitlist
	// for up to this long: use CreateHoldOrWait (CreateHold refuses it).
	Wait time.Duration
	// Partial asks for what the region can give each line (the hold's
	// items then carry Granted) instead of all lines or none.
	Partial bool
	// Cart is an opaque cart reference stored on the hold.
	Cart string
}

// Hold is a hold as the region reports it (api.Hold), with what the client
// saw of the answer.
type Hold struct {
	api.Hold
	// Replayed is true when an idempotent retry returned an existing hold
	// (200 with Idempotent-Replayed: true instead of 201).
	Replayed bool `json:"-"`
	// Raw is the response body as received.
	Raw json.RawMessage `json:"-"`
}

// Stock is one region's view of a SKU (api.Stock; Applied is set by
// restock and write-off), with the response body as received.
type Stock struct {
	api.Stock
	Raw json.RawMessage `json:"-"`
	// ETag is the answer's ETag header (the SKU's version, quoted): give
	// it as IfMatch to apply an admin write only if nothing moved.
	ETag string `json:"-"`
}

// CreateHold asks for a hold. It answers 201 with the new hold, or 200 with
// the original hold of an idempotent retry.
func (c *Client) CreateHold(ctx context.Context, req HoldRequest) (*Hold, error) {
	body := api.CreateHoldRequest{Items: req.Items, Metadata: req.Metadata, Partial: req.Partial, Cart: req.Cart}
	if len(body.Metadata) > 0 && !json.Valid(body.Metadata) {
		return nil, errors.New("client: metadata is not valid JSON")
	}
	if req.TTL < 0 {
		return nil, errors.New("client: negative ttl")
	}
	if req.TTL > 0 {
		body.TTL = req.TTL.String()
	}
	if req.Wait != 0 {
		return nil, errors.New("client: a hold that may wait needs CreateHoldOrWait")
	}
	hdr := http.Header{}
	if req.IdempotencyKey != "" {
		if strings.ContainsAny(req.IdempotencyKey, "\r\n") {
			return nil, errors.New("client: idempotency key contains a line break")
		}
		hdr.Set("Idempotency-Key", req.IdempotencyKey)
	}
	var h Hold
	resp, err := c.Do(ctx, http.MethodPost, "/v1/holds", hdr, body, &h)
	if err != nil {
		return nil, err
	}
	h.Raw = resp.Body
	h.Replayed = resp.Status == http.StatusOK || resp.Header.Get("Idempotent-Replayed") == "true"
	return &h, nil
}

// GetHold reads a hold (forwarded to its owner region if needed).
func (c *Client) GetHold(ctx context.Context, id string) (*Hold, error) {
	return c.holdOp(ctx, http.MethodGet, id, "", nil)
}

// Confirm moves a held hold to confirmed (idempotent).
func (c *Client) Confirm(ctx context.Context, id string) (*Hold, error) {
	return c.holdOp(ctx, http.MethodPost, id, "/confirm", nil)
}

// Release gives a hold's units back (idempotent; also succeeds on an
// expired hold).
func (c *Client) Release(ctx context.Context, id string) (*Hold, error) {
	return c.holdOp(ctx, http.MethodPost, id, "/release", nil)
}

// Extend pushes a held hold's deadline to now+ttl, never past its maximum
// lifetime.
func (c *Client) Extend(ctx context.Context, id string, ttl time.Duration) (*Hold, error) {
	if ttl <= 0 {
		return nil, errors.New("client: extend needs a positive ttl")
	}
	return c.holdOp(ctx, http.MethodPost, id, "/extend", api.ExtendRequest{TTL: ttl.String()})
}

func (c *Client) holdOp(ctx context.Context, method, id, suffix string, body any) (*Hold, error) {
	if id == "" {
		return nil, errors.New("client: empty hold id")
	}
	var h Hold
	resp, err := c.Do(ctx, method, "/v1/holds/"+url.PathEscape(id)+suffix, nil, body, &h)
	if err != nil {
		return nil, err
	}
	h.Raw = resp.Body
	return &h, nil
}

// Stock reads the region's view of a SKU.
func (c *Client) Stock(ctx context.Context, sku string) (*Stock, error) {
	return c.skuOp(ctx, http.MethodGet, sku, "", nil)
}

// Restock adds qty units of sku to this region's slice (admin scope) and
// returns the region's view of sku afterwards, with Applied set.
func (c *Client) Restock(ctx context.Context, sku string, qty uint64) (*Stock, error) {
	return c.skuOp(ctx, http.MethodPost, sku, "/restock", api.QtyRequest{Qty: qty})
}

// WriteOff removes up to qty available units of sku from this region's
// slice (admin scope); Stock.Applied says how many were removed.
func (c *Client) WriteOff(ctx context.Context, sku string, qty uint64) (*Stock, error) {
	return c.skuOp(ctx, http.MethodPost, sku, "/write-off", api.QtyRequest{Qty: qty})
}

func (c *Client) skuOp(ctx context.Context, method, sku, suffix string, body any) (*Stock, error) {
	return c.skuOpIf(ctx, method, sku, suffix, "", body)
}

// skuOpIf is skuOp with an If-Match header (when ifMatch is not empty).
func (c *Client) skuOpIf(ctx context.Context, method, sku, suffix, ifMatch string, body any) (*Stock, error) {
	if sku == "" {
		return nil, errors.New("client: empty sku")
	}
	var hdr http.Header
	if ifMatch != "" {
		if strings.ContainsAny(ifMatch, "\r\n") {
			return nil, errors.New("client: If-Match contains a line break")
		}
		hdr = http.Header{"If-Match": {ifMatch}}
	}
	var s Stock
	resp, err := c.Do(ctx, method, "/v1/skus/"+url.PathEscape(sku)+suffix, hdr, body, &s)
	if err != nil {
		return nil, err
	}
	s.Raw = resp.Body
	s.ETag = resp.Header.Get("ETag")
	return &s, nil
}

// Response is a 2xx answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte // bounded by Options.MaxResponseBytes
}

// Do sends one request. path is relative to the base URL and already
// escaped; in, when not nil, is sent as JSON; a 2xx JSON answer is decoded
// into out (when not nil). Any other status is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, hdr http.Header, in, out any) (*Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("client: encode request: %w", err)
		}
		if len(b) > MaxRequestBytes {
			return nil, fmt.Errorf("client: request body of %d bytes exceeds the limit of %d", len(b), MaxRequestBytes)
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	// path is already escaped: parsing the joined string keeps "%2F" in a
	// SKU as one path segment.
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.setHeaders(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		// err names the method and URL already.
		return nil, fmt.Errorf("client: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, c.maxResp+1))
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: read response: %w", method, path, err)
	}
	if int64(len(raw)) > c.maxResp {
		return nil, fmt.Errorf("client: %s %s: response larger than %d bytes", method, path, c.maxResp)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, problem(resp, raw)
	}
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return r, fmt.Errorf("client: %s %s: decode %d response: %w", method, path, resp.StatusCode, err)
		}
	}
	return r, nil
}

func problem(resp *http.Response, raw []byte) *Error {
	e := &Error{Problem: api.Problem{Status: resp.StatusCode}, Body: raw}
	ct := resp.Header.Get("Content-Type")
	if strings.Contains(ct, "json") {
		// A body that is not a problem leaves the fields empty; Error()
		// then shows the start of the body.
		_ = json.Unmarshal(raw, e)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if s, err := strconv.Atoi(ra); err == nil && s >= 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		} else if t, err := http.ParseTime(ra); err == nil {
			e.RetryAfter = max(time.Until(t), 0)
		}
	}
	return e
}

// setHeaders sets what every request of the client carries: what it
// accepts, who it is, and its bearer token.
func (c *Client) setHeaders(req *http.Request) {
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", c.ua)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
}
