package testapi

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/httpapi"
)

// Response is what Call got back: status, headers and the whole body.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Call sends one HTTP request (body may be empty; header values are set,
// not added) and reads the whole answer. A transport error fails the test.
func Call(t testing.TB, method, url, body string, header map[string]string) Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return Response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// JSON decodes the body into v, failing the test if it is not JSON of v.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("status %d body %s: %v", r.Status, r.Body, err)
	}
}

// Problem decodes a problem document and checks that it is one: its
// content type, a type under httpapi.ProblemTypeBase, the response's
// status, a title and a detail.
func (r Response) Problem(t testing.TB) api.Problem {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q for status %d: %s", ct, r.Status, r.Body)
	}
	var p api.Problem
	r.JSON(t, &p)
	if p.Status != r.Status || !strings.HasPrefix(p.Type, httpapi.ProblemTypeBase) || p.Title == "" || p.Detail == "" {
		t.Fatalf("incomplete problem for status %d: %+v", r.Status, p)
	}
	return p
}

// Hold decodes a hold.
func (r Response) Hold(t testing.TB) api.Hold {
	t.Helper()
	var h api.Hold
	r.JSON(t, &h)
	return h
}
