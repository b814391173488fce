package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/client"
)

// HTTPClient speaks the region's HTTP API (/v1) for benchmarks. The
// workload (NewOp) gives each worker its own keep-alive connection through
// a minimal HTTP/1.1 client (see rawConn) unless UseStdlib is set or the
// URL is https. Restock and the stdlib mode go through package client, on
// one net/http transport sized for the concurrency so that workers reuse
// connections instead of opening one per request. The minimal client stays
// because, in interleaved runs on the benchmark machine, it granted 1.3-1.9x
// the holds/s of a tuned net/http client at 0.6-0.85x its CPU per hold, and
// the load generator shares the CPU with the region it measures
// (docs/benchmarks.md, "Why loadgen has its own HTTP client").
type HTTPClient struct {
	// UseStdlib makes NewOp use package client (net/http) instead of the
	// minimal client.
	UseStdlib bool

	host    string // host[:port] for the minimal client
	prefix  string // path prefix of the API
	https   bool
	auth    string // "Bearer <token>" or ""
	timeout time.Duration
	tr      *http.Transport
	api     *client.Client
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
	ac, err := client.New(strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/"), client.Options{
		Token: token, Timeout: timeout, HTTPClient: &http.Client{Transport: tr}, UserAgent: userAgent})
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	c := &HTTPClient{
		host:    u.Host,
		prefix:  strings.TrimRight(u.Path, "/"),
		https:   u.Scheme == "https",
		timeout: timeout,
		tr:      tr,
		api:     ac,
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

// userAgent names the load generator in the region's logs, whichever
// client sends the request.
const userAgent = "holdfast-bench"

// Close closes idle connections.
func (c *HTTPClient) Close() { c.tr.CloseIdleConnections() }

// HoldBody is the JSON body of a hold of qty units of sku.
func HoldBody(sku string, qty uint64, ttl time.Duration) []byte {
	b, _ := json.Marshal(api.CreateHoldRequest{Items: []api.Item{{SKU: sku, Qty: qty}}, TTL: ttl.String()})
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
	var v api.Hold
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
	for qty > 0 {
		n := min(qty, maxPerCall)
		if _, err := c.api.Restock(ctx, sku, n); err != nil {
			return fmt.Errorf("restock %s: %w", sku, err)
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
	if wl.SKUs > MaxHTTPSKUs {
		return nil, fmt.Errorf("skus over HTTP must be 1..%d (one prebuilt request per SKU), got %d", MaxHTTPSKUs, wl.SKUs)
	}
	if c.UseStdlib || c.https {
		return c.stdOp(wl), nil
	}
	reqs := make([][]byte, wl.SKUs)
	for i := range reqs {
		reqs[i] = appendRequest(nil, http.MethodPost, c.host, c.prefix+"/v1/holds", c.auth, HoldBody(SKUName(i), wl.Qty, wl.TTL))
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

// stdOp is the workload through package client (net/http).
func (c *HTTPClient) stdOp(wl Workload) func(w int) (Op, error) {
	carts := make([][]api.Item, wl.SKUs)
	for i := range carts {
		carts[i] = []api.Item{{SKU: SKUName(i), Qty: wl.Qty}}
	}
	return func(w int) (Op, error) {
		p := wl.Picker(w)
		return func(ctx context.Context) Result {
			t0 := time.Now()
			h, err := c.api.CreateHold(ctx, client.HoldRequest{Items: carts[p.SKU()], TTL: wl.TTL})
			lat := time.Since(t0)
			switch {
			case client.StatusOf(err) == http.StatusConflict:
				return Result{Outcome: Rejected, Latency: lat}
			case err != nil:
				return Result{Outcome: Error, Err: fmt.Errorf("hold: %w", err)}
			case wl.Mix != MixShopper:
				return Result{Outcome: OK, Latency: lat}
			}
			follow, action := c.api.Release, "release"
			if p.Confirm() {
				follow, action = c.api.Confirm, "confirm"
			}
			if _, err := follow(ctx, h.ID); err != nil {
				return Result{Outcome: Error, Err: fmt.Errorf("%s: %w", action, err), Extra: 1}
			}
			return Result{Outcome: OK, Latency: lat, Extra: 1}
		}, nil
	}
}
