// Package layering holds the test that keeps package dependencies to the
// table in docs/architecture.md ("Layering").
package layering

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const (
	module       = "github.com/holdfast-io/holdfast"
	architecture = "../../docs/architecture.md"
	stdlibOnly   = "anything outside the standard library"
)

// rule is one row of the table.
type rule struct {
	pkg        string   // module-relative; "*" is every package but internal/...
	stdlibOnly bool     // may depend on the standard library only
	forbidden  []string // module-relative or standard import paths
}

func TestLayering(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the module")
	}
	rules := readRules(t)
	deps, standard := listDeps(t)
	var names []string
	for p := range deps {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, r := range rules {
		var targets []string
		for _, p := range names {
			rel := strings.TrimPrefix(strings.TrimPrefix(p, module), "/")
			switch {
			case r.pkg == "*":
				if !under(rel, "internal") {
					targets = append(targets, p)
				}
			case rel == r.pkg:
				targets = append(targets, p)
			}
		}
		if len(targets) == 0 {
			t.Logf("row %q: no such package (yet); skipped", r.pkg)
			continue
		}
		for _, p := range targets {
			for _, d := range deps[p] {
				// A stdlib-only package may use its own subpackages
				// (escrow/internal/...): their dependencies are in deps
				// too, so they are held to the same rule.
				if own, ok := strings.CutPrefix(d, module+"/"); ok && under(own, r.pkg) {
					continue
				}
				if r.stdlibOnly && !standard[d] {
					t.Errorf("%s depends on %s: it may use the standard library only", p, d)
					continue
				}
				for _, f := range r.forbidden {
					rel, ours := strings.CutPrefix(d, module+"/")
					if (ours && under(rel, f)) || (standard[d] && under(d, f)) {
						t.Errorf("%s depends on %s: the table forbids %s", p, d, f)
					}
				}
			}
		}
	}
}

// under reports whether path is name or inside it.
func under(path, name string) bool {
	return path == name || strings.HasPrefix(path, name+"/")
}

// readRules parses the "package | may not import" table of the Layering
// section.
func readRules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile(architecture)
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## Layering\n")
	if !ok {
		t.Fatalf("%s has no \"## Layering\" section", architecture)
	}
	if i := strings.Index(sec, "\n## "); i >= 0 {
		sec = sec[:i]
	}
	var rules []rule
	inTable := false
	for _, line := range strings.Split(sec, "\n") {
		cells := strings.Split(line, "|")
		if !strings.HasPrefix(line, "|") || len(cells) < 4 {
			inTable = false
			continue
		}
		first, second := strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])
		if first == "package" && second == "may not import" {
			inTable = true
			continue
		}
		if !inTable || strings.HasPrefix(first, "---") {
			continue
		}
		r := rule{pkg: strings.Trim(first, "`")}
		if second == stdlibOnly {
			r.stdlibOnly = true
		} else {
			for _, f := range strings.Split(second, ",") {
				f = strings.Trim(strings.TrimSpace(f), "`")
				if f == "" || strings.ContainsAny(f, " `") {
					t.Fatalf("%s: row %q: bad entry %q", architecture, first, f)
				}
				r.forbidden = append(r.forbidden, f)
			}
		}
		rules = append(rules, r)
	}
	if len(rules) < 5 {
		t.Fatalf("%s: found %d layering rows; is the table still \"| package | may not import |\"?", architecture, len(rules))
	}
	return rules
}

// listDeps returns the transitive production dependencies of every package
// of the module (test files excluded: tests may import what they like) and
// which import paths are standard.
func listDeps(t *testing.T) (map[string][]string, map[string]bool) {
	t.Helper()
	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command("go", append([]string{"list"}, args...)...)
		cmd.Dir = "../.."
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %v: %v\n%s", args, err, stderr.String())
		}
		return out
	}
	deps := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(run("-f", "{{.ImportPath}} {{join .Deps \" \"}}", "./...")))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 {
			deps[f[0]] = f[1:]
		}
	}
	standard := map[string]bool{}
	sc = bufio.NewScanner(bytes.NewReader(run("-deps", "-f", "{{.ImportPath}} {{.Standard}}", "./...")))
	for sc.Scan() {
		if p, std, ok := strings.Cut(sc.Text(), " "); ok {
			standard[p] = std == "true"
		}
	}
	return deps, standard
}
