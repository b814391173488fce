package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/httpapi"
	"github.com/holdfast-io/holdfast/internal/testutil/testapi"
	"github.com/holdfast-io/holdfast/region"
)

// openAPIPath is the spec, relative to this package's directory.
var openAPIPath = filepath.Join("..", "docs", "openapi.yaml")

var httpMethods = map[string]bool{"get": true, "put": true, "post": true, "delete": true, "options": true,
	"head": true, "patch": true, "trace": true}

var pathParam = regexp.MustCompile(`\{[^}/]+\}`)

// normRoute turns "POST /v1/holds/{id}/confirm" into "POST /v1/holds/{}/confirm",
// so that parameter names do not matter, only where they are.
func normRoute(r string) string { return pathParam.ReplaceAllString(r, "{}") }

type openAPIDoc struct {
	OpenAPI    string                          `yaml:"openapi"`
	Paths      map[string]map[string]yaml.Node `yaml:"paths"`
	Components struct {
		Schemas map[string]openAPISchema `yaml:"schemas"`
	} `yaml:"components"`
	Raw string `yaml:"-"`
}

type openAPISchema struct {
	Required   []string       `yaml:"required"`
	Properties map[string]any `yaml:"properties"`
}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	b, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatalf("read spec: %v", err)
	}
	var doc openAPIDoc
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parse %s: %v", openAPIPath, err)
	}
	doc.Raw = string(b)
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi: %q, want 3.1.x", doc.OpenAPI)
	}
	return doc
}

// specRoutes lists "METHOD /path" for every operation of the spec.
func specRoutes(doc openAPIDoc) []string {
	var out []string
	for path, item := range doc.Paths {
		for key := range item {
			if httpMethods[key] {
				out = append(out, strings.ToUpper(key)+" "+path)
			}
		}
	}
	sort.Strings(out)
	return out
}

// nopStorage keeps nothing: listing routes needs a running region, not a disk.
type nopStorage struct{}

func (nopStorage) Load() (*escrow.State, error)  { return &escrow.State{}, nil }
func (nopStorage) Apply(p *escrow.Persist) error { return nil }
func (nopStorage) Close() error                  { return nil }

func openRegion(t *testing.T) *region.Region {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := region.Open(ctx, region.Config{Name: "eu", Storage: nopStorage{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// openAPI is the HTTP API of openRegion.
func openAPI(t *testing.T) *httpapi.Server {
	t.Helper()
	s, err := httpapi.New(openRegion(t), region.Config{Name: "eu"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOpenAPIMatchesRoutes: every route the API serves is in
// docs/openapi.yaml, and every operation of the spec is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	s := openAPI(t)

	served := map[string]string{}
	for _, rt := range s.Routes() {
		served[normRoute(rt)] = rt
	}
	spec := map[string]string{}
	for _, rt := range specRoutes(doc) {
		spec[normRoute(rt)] = rt
	}
	if len(served) == 0 {
		t.Fatal("the region serves no routes")
	}
	for n, rt := range served {
		if _, ok := spec[n]; !ok {
			t.Errorf("route %q is served but not in %s", rt, openAPIPath)
		}
	}
	for n, rt := range spec {
		if _, ok := served[n]; !ok {
			t.Errorf("operation %q is in %s but not served", rt, openAPIPath)
		}
	}
}

// TestOpenAPIProblemTypes: every problem type the region can answer with is
// listed in the spec, so clients can rely on the enum.
func TestOpenAPIProblemTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	slugs := []string{httpapi.ProblemOverloaded, httpapi.ProblemStorage, httpapi.ProblemOwnerUnreachable,
		httpapi.ProblemUnavailable, httpapi.ProblemTimeout, httpapi.ProblemUnauthorized, httpapi.ProblemForbidden,
		httpapi.ProblemTooLarge, httpapi.ProblemMediaType, httpapi.ProblemMethod, httpapi.ProblemRoute,
		httpapi.ProblemNotReady, httpapi.ProblemEventsGone, httpapi.ProblemEventsDisabled, httpapi.ProblemImportRunning}
	// Every named escrow code but routed, which never reaches a client
	// (the runtime sends such a hold to the SKU's home).
	for c := escrow.CodeInvalid; !strings.HasPrefix(c.String(), "code-"); c++ {
		if c != escrow.CodeRouted {
			slugs = append(slugs, c.String())
		}
	}
	if len(slugs) < 12+10 {
		t.Fatalf("only %d problem types checked", len(slugs))
	}
	for _, s := range slugs {
		uri := httpapi.ProblemTypeBase + s
		if !strings.Contains(doc.Raw, "- "+uri+"\n") {
			t.Errorf("problem type %s is not in the ProblemType enum of %s", uri, openAPIPath)
		}
	}
}

// TestOpenAPIRefsResolve: every local $ref points at a defined component.
func TestOpenAPIRefsResolve(t *testing.T) {
	doc := loadOpenAPI(t)
	var root map[string]any
	if err := yaml.Unmarshal([]byte(doc.Raw), &root); err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`\$ref: "#/([^"]+)"`).FindAllStringSubmatch(doc.Raw, -1)
	if len(refs) == 0 {
		t.Fatal("no $ref found: the pattern no longer matches the spec's style")
	}
	for _, m := range refs {
		var cur any = root
		for _, part := range strings.Split(m[1], "/") {
			obj, ok := cur.(map[string]any)
			if !ok {
				cur = nil
				break
			}
			cur = obj[part]
		}
		if cur == nil {
			t.Errorf("$ref #/%s does not resolve", m[1])
		}
	}
}

// TestOpenAPISchemasMatchTypes: the properties of each schema are exactly
// the JSON fields of the Go type the region encodes or decodes, and for
// answers, the required properties are exactly the fields always present.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	spec := loadOpenAPI(t)
	cases := []struct {
		schema string
		typ    any
		answer bool // encoded by the region: required = fields without omitempty
	}{
		{"Hold", api.Hold{}, true},
		{"Stock", api.Stock{}, true},
		{"RegionStock", api.RegionStock{}, true},
		{"Problem", api.Problem{}, true},
		{"EventsPage", api.EventsPage{}, true},
		{"Item", api.Item{}, false},
		{"CreateHoldRequest", api.CreateHoldRequest{}, false},
		{"ExtendRequest", api.ExtendRequest{}, false},
		{"QtyRequest", api.QtyRequest{}, false},
		{"WaitlistEntry", api.WaitlistEntry{}, true},
		{"RecountRequest", api.RecountRequest{}, false},
		{"RecountResult", api.RecountResult{}, true},
		{"ImportLine", api.ImportLine{}, false},
		{"ImportResult", api.ImportResult{}, true},
	}
	for _, c := range cases {
		sc, ok := spec.Components.Schemas[c.schema]
		if !ok {
			t.Errorf("schema %s missing", c.schema)
			continue
		}
		fields, always := jsonFields(reflect.TypeOf(c.typ))
		var props []string
		for p := range sc.Properties {
			props = append(props, p)
		}
		sort.Strings(props)
		if !reflect.DeepEqual(props, fields) {
			t.Errorf("schema %s has properties %v, type %T encodes %v", c.schema, props, c.typ, fields)
		}
		if c.answer {
			req := append([]string(nil), sc.Required...)
			sort.Strings(req)
			if !reflect.DeepEqual(req, always) {
				t.Errorf("schema %s requires %v, type %T always has %v", c.schema, req, c.typ, always)
			}
		}
	}
}

// jsonFields lists the JSON names of a struct's fields, and those without
// omitempty, both sorted.
func jsonFields(t reflect.Type) (all, always []string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		all = append(all, name)
		if !strings.Contains(opts, "omitempty") {
			always = append(always, name)
		}
	}
	sort.Strings(all)
	sort.Strings(always)
	return all, always
}

// TestOpenAPIAnswersMatchSchemas: real answers of a region (some are
// encoded by hand) carry only properties of their schema and every required
// one.
func TestOpenAPIAnswersMatchSchemas(t *testing.T) {
	testapi.ForEachServer(t, testOpenAPIAnswersMatchSchemas)
}

func testOpenAPIAnswersMatchSchemas(t *testing.T) {
	spec := loadOpenAPI(t)
	base := testapi.ServeAPI(t, openRegion(t), region.Config{Name: "eu"}) // on the subtest's server
	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return resp.StatusCode, m
	}
	check := func(what, schema string, m map[string]any) {
		t.Helper()
		sc := spec.Components.Schemas[schema]
		for k := range m {
			if _, ok := sc.Properties[k]; !ok {
				t.Errorf("%s: property %q is not in schema %s", what, k, schema)
			}
		}
		for _, k := range sc.Required {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: required property %q of schema %s is missing", what, k, schema)
			}
		}
	}
	_, m := call("POST", "/v1/skus/A/restock", `{"qty":3}`)
	check("restock", "Stock", m)
	for name, rs := range m["regions"].(map[string]any) {
		check("restock regions."+name, "RegionStock", rs.(map[string]any))
	}
	code, m := call("POST", "/v1/holds", `{"items":[{"sku":"A","qty":2}],"ttl":"1m","metadata":{"c":1}}`)
	if code != 201 {
		t.Fatalf("create hold: %d %v", code, m)
	}
	check("create hold", "Hold", m)
	id, _ := m["id"].(string)
	_, m = call("POST", "/v1/holds/"+id+"/extend", `{"ttl":"2m"}`)
	check("extend", "Hold", m)
	_, m = call("GET", "/v1/skus/A", "")
	check("stock", "Stock", m)
	code, m = call("POST", "/v1/holds", `{"items":[{"sku":"A","qty":5}]}`)
	if code != 409 {
		t.Fatalf("hold beyond stock: %d %v", code, m)
	}
	check("insufficient-stock", "Problem", m)
	_, m = call("GET", "/healthz", "")
	if m["status"] != "ok" {
		t.Errorf("healthz: %v", m)
	}
}

// TestFenceProblemInSpec: the fenced problem type is in the OpenAPI spec.
func TestFenceProblemInSpec(t *testing.T) {
	doc := loadOpenAPI(t)
	uri := httpapi.ProblemTypeBase + escrow.CodeFenced.String()
	if !strings.Contains(doc.Raw, "- "+uri+"\n") {
		t.Fatalf("%s is not in the ProblemType enum of %s", uri, openAPIPath)
	}
}
