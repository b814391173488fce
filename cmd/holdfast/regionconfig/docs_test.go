package regionconfig

import (
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

const operationsDoc = "../../../docs/operations.md"

// TestDocumentedKeys: every key of the "Region configuration" tables of
// docs/operations.md is accepted by the decoder, every key the decoder
// accepts is in those tables, and no backticked word elsewhere in the guide
// is a misspelling of a key (the guide once named `defaultttl` and
// `maxholds`, which the decoder refuses).
func TestDocumentedKeys(t *testing.T) {
	b, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	top, esc := documentedKeys(t, doc)
	if len(top) == 0 || len(esc) == 0 {
		t.Fatalf("no key tables found in %s (top-level %d, escrow %d keys)", operationsDoc, len(top), len(esc))
	}
	for _, k := range top {
		if _, err := Decode(strings.NewReader(k + ": ~\n")); err != nil {
			t.Errorf("documented key %q refused: %v", k, err)
		}
	}
	for _, k := range esc {
		if _, err := Decode(strings.NewReader("escrow:\n  " + k + ": ~\n")); err != nil {
			t.Errorf("documented key escrow.%s refused: %v", k, err)
		}
	}
	wantTop, wantEsc := yamlKeys(reflect.TypeOf(File{})), yamlKeys(reflect.TypeOf(Escrow{}))
	for _, missing := range minus(wantTop, top) {
		t.Errorf("key %q is not in the table of %s", missing, operationsDoc)
	}
	for _, missing := range minus(wantEsc, esc) {
		t.Errorf("key escrow.%s is not in the escrow table of %s", missing, operationsDoc)
	}

	// Prose: `escrow.x` must name an escrow key, and a word that is a key
	// without its underscores must be spelt as the key.
	squash := map[string]string{}
	for _, k := range append(wantTop, wantEsc...) {
		squash[strings.ReplaceAll(k, "_", "")] = k
	}
	isEsc := map[string]bool{}
	for _, k := range wantEsc {
		isEsc[k] = true
	}
	for _, m := range regexp.MustCompile("`([a-z][a-z0-9_.]*)`").FindAllStringSubmatch(doc, -1) {
		w := m[1]
		if k, ok := strings.CutPrefix(w, "escrow."); ok && !isEsc[k] && !strings.Contains(k, ".") {
			t.Errorf("%s names `%s`, which is not an escrow key", operationsDoc, w)
		}
		if k, ok := squash[strings.ReplaceAll(w, "_", "")]; ok && k != w {
			t.Errorf("%s names `%s`: the key is `%s`", operationsDoc, w, k)
		}
	}
}

// documentedKeys returns the first-column keys of the tables of the
// "Region configuration" section: the top-level table (header "key") and the
// escrow table (header "`escrow:` key").
func documentedKeys(t *testing.T, doc string) (top, esc []string) {
	t.Helper()
	_, sec, ok := strings.Cut(doc, "\n## Region configuration\n")
	if !ok {
		t.Fatalf("%s has no \"## Region configuration\" section", operationsDoc)
	}
	if i := strings.Index(sec, "\n## "); i >= 0 {
		sec = sec[:i]
	}
	var cur *[]string
	for _, line := range strings.Split(sec, "\n") {
		if !strings.HasPrefix(line, "|") {
			cur = nil
			continue
		}
		cells := strings.Split(line, "|")
		first := strings.TrimSpace(cells[1])
		switch {
		case first == "key":
			cur = &top
			continue
		case first == "`escrow:` key":
			cur = &esc
			continue
		case cur == nil || strings.HasPrefix(first, "---"):
			continue
		}
		k := strings.Trim(first, "`")
		k = strings.TrimSuffix(k, ":") // the `escrow:` row names the section
		*cur = append(*cur, k)
	}
	return top, esc
}

// yamlKeys lists the yaml keys of a struct type.
func yamlKeys(typ reflect.Type) []string {
	var keys []string
	for i := 0; i < typ.NumField(); i++ {
		if k, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ","); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// minus returns the elements of a not in b.
func minus(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []string
	for _, x := range a {
		if !in[x] {
			out = append(out, x)
		}
	}
	return out
}
