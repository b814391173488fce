package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// HTTPClient speaks the region's HTTP API (/v1) for benchmarks. The
// workload (NewOp) gives each worker its own keep-alive connection through
// a minimal HTTP/1.1 client (see rawConn) unless UseStdlib is set or the
// URL is https; Restock and the stdlib mode use net/http with one transport
// sized for the concurrency, so that workers reuse connections instead of
// opening one per request.
type HTTPClient struct {
	// UseStdlib makes NewOp use net/http instead of the minimal client.
	UseStdlib bool

	base    string // scheme://host[:port][/prefix] without a trailing slash
	host    string // host[:port] for the minimal client
	prefix  string // path prefix of the API
	https   bool
	auth    string // "Bearer <token>" or ""
	timeout time.Duration
	client  *http.Client
}

// NewHTTPClient returns a client for the region at rawURL.
func NewHTTPClient(rawURL, token string, concurrency int, timeout time.Duration) (*HTTPClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("loadgen: url must be http(s)://host:port, got %q", rawURL)
	}
	if concurrency < 1 {
		concurrency = 1
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	tr := &http.Transport{
		Proxy:               nil, // benchmarks talk to the region directly, never via a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        concurrency + 16,
		MaxIdleConnsPerHost: concurrency + 16, // default 2 would close and redial under load
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	c := &HTTPClient{
		base:    strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/"),
		host:    u.Host,
		prefix:  strings.TrimRight(u.Path, "/"),
		https:   u.Scheme == "https",
		timeout: timeout,
		client:  &http.Client{Transport: tr, Timeout: timeout},
	}
	if !strings.Contains(u.Host, ":") {
		c.host = u.Host + ":80"
		if c.https {
			c.host = u.Host + ":443"
		}
	}
	if token != "" {
		c.auth = "Bearer " + token
	}
	return c, nil
}

// Close closes idle connections.
func (c *HTTPClient) Close() { c.client.CloseIdleConnections() }

// do sends one request and reads the whole response into buf (reused by the
// caller), so the connection goes back to the pool.
func (c *HTTPClient) do(ctx context.Context, method, path string, body []byte, buf *bytes.Buffer) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header["Content-Type"] = jsonCT
	}
	if c.auth != "" {
		req.Header["Authorization"] = []string{c.auth}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, err
	}
	buf.Reset()
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return resp.StatusCode, fmt.Errorf("read %s %s: %w", method, path, err)
	}
	return resp.StatusCode, nil
}

var jsonCT = []string{"application/json"}

// HoldBody is the JSON body of a hold of qty units of sku.
func HoldBody(sku string, qty uint64, ttl time.Duration) []byte {
	b, _ := json.Marshal(map[string]any{
		"items": []map[string]any{{"sku": sku, "qty": qty}},
		"ttl":   ttl.String(),
	})
	return b
}

// holdID extracts "id" from a hold response without a full decode.
func holdID(body []byte) (string, error) {
	const key = `"id":"`
	if i := bytes.Index(body, []byte(key)); i >= 0 {
		rest := body[i+len(key):]
		if j := bytes.IndexByte(rest, '"'); j > 0 {
			return string(rest[:j]), nil
		}
	}
	var v struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.ID == "" {
		return "", fmt.Errorf("hold response has no id: %.200s", body)
	}
	return v.ID, nil
}

func statusErr(what string, status int, body []byte) error {
	return fmt.Errorf("%s: HTTP %d: %.300s", what, status, bytes.TrimSpace(body))
}

// Restock adds qty units of sku (admin scope), in calls of at most
// maxPerCall units.
func (c *HTTPClient) Restock(ctx context.Context, sku string, qty, maxPerCall uint64) error {
	var buf bytes.Buffer
	for qty > 0 {
		n := min(qty, maxPerCall)
		body := []byte(`{"qty":` + strconv.FormatUint(n, 10) + `}`)
		st, err := c.do(ctx, http.MethodPost, "/v1/skus/"+url.PathEscape(sku)+"/restock", body, &buf)
		if err != nil {
			return fmt.Errorf("restock %s: %w", sku, err)
		}
		if st/100 != 2 {
			return statusErr("restock "+sku, st, buf.Bytes())
		}
		qty -= n
	}
	return nil
}

// NewOp returns the operation factory of the workload over HTTP: worker w
// holds Qty units of a SKU drawn by its picker and, for the shopper mix,
// confirms or releases the hold. The latency is that of the hold request.
func (c *HTTPClient) NewOp(wl Workload) (func(w int) (Op, error), error) {
	if err := wl.Validate(); err != nil {
		return nil, err
	}
	bodies := make([][]byte, wl.SKUs)
	for i := range bodies {
		bodies[i] = HoldBody(SKUName(i), wl.Qty, wl.TTL)
	}
	if c.UseStdlib || c.https {
		return c.stdOp(wl, bodies), nil
	}
	reqs := make([][]byte, len(bodies))
	for i, b := range bodies {
		reqs[i] = appendRequest(nil, http.MethodPost, c.host, c.prefix+"/v1/holds", c.auth, b)
	}
	return func(w int) (Op, error) {
		p := wl.Picker(w)
		rc := &rawConn{addr: c.host, timeout: c.timeout}
		buf := &bytes.Buffer{}
		buf.Grow(4096)
		var follow []byte
		return func(ctx context.Context) Result {
			t0 := time.Now()
			st, err := rc.roundTrip(ctx, reqs[p.SKU()], buf)
			lat := time.Since(t0)
			if r, done := holdOutcome(st, err, lat, buf, wl.Mix); done {
				return r
			}
			id, action, err := shopperNext(buf.Bytes(), p)
			if err != nil {
				return Result{Outcome: Error, Err: err}
			}
			follow = appendRequest(follow[:0], http.MethodPost, c.host, c.prefix+"/v1/holds/"+id+action, c.auth, nil)
			st, err = rc.roundTrip(ctx, follow, buf)
			return followOutcome(st, err, lat, buf, action)
		}, nil
	}, nil
}

// shopperNext reads the id of the hold a shopper got and picks what the
// shopper does with it next: action is "/confirm" or "/release".
func shopperNext(body []byte, p *Picker) (id, action string, err error) {
	if id, err = holdID(body); err != nil {
		return "", "", err
	}
	action = "/release"
	if p.Confirm() {
		action = "/confirm"
	}
	return id, action, nil
}

// holdOutcome classifies a hold response; done is false when the shopper
// mix goes on with a confirm or release.
func holdOutcome(st int, err error, lat time.Duration, buf *bytes.Buffer, mix Mix) (r Result, done bool) {
	switch {
	case err != nil:
		return Result{Outcome: Error, Err: err}, true
	case st == http.StatusConflict:
		return Result{Outcome: Rejected, Latency: lat}, true
	case st != http.StatusCreated && st != http.StatusOK:
		return Result{Outcome: Error, Err: statusErr("hold", st, buf.Bytes())}, true
	case mix != MixShopper:
		return Result{Outcome: OK, Latency: lat}, true
	}
	return Result{}, false
}

func followOutcome(st int, err error, lat time.Duration, buf *bytes.Buffer, action string) Result {
	if err != nil {
		return Result{Outcome: Error, Err: err, Extra: 1}
	}
	if st/100 != 2 {
		return Result{Outcome: Error, Err: statusErr(action[1:], st, buf.Bytes()), Extra: 1}
	}
	return Result{Outcome: OK, Latency: lat, Extra: 1}
}

// stdOp is the workload over net/http.
func (c *HTTPClient) stdOp(wl Workload, bodies [][]byte) func(w int) (Op, error) {
	return func(w int) (Op, error) {
		p := wl.Picker(w)
		buf := &bytes.Buffer{}
		buf.Grow(4096)
		return func(ctx context.Context) Result {
			t0 := time.Now()
			st, err := c.do(ctx, http.MethodPost, "/v1/holds", bodies[p.SKU()], buf)
			lat := time.Since(t0)
			if r, done := holdOutcome(st, err, lat, buf, wl.Mix); done {
				return r
			}
			id, action, err := shopperNext(buf.Bytes(), p)
			if err != nil {
				return Result{Outcome: Error, Err: err}
			}
			st, err = c.do(ctx, http.MethodPost, "/v1/holds/"+id+action, nil, buf)
			return followOutcome(st, err, lat, buf, action)
		}, nil
	}
}
