package escrow

import (
	"errors"
	"testing"

	"github.com/holdfast-io/holdfast/escrow/internal/plantedbugs"
)

// checkWithAndWithoutBug runs check twice, as subtests: "ok" with no bug
// planted, where it must return nil, and name with bug planted, where it
// must return the error that shows the bug was caught.
func checkWithAndWithoutBug(t *testing.T, name string, bug plantedbugs.Bugs, check func(*testing.T, plantedbugs.Bugs) error) {
	t.Helper()
	t.Run("ok", func(t *testing.T) {
		if err := check(t, plantedbugs.Bugs{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run(name, func(t *testing.T) {
		err := check(t, bug)
		if err == nil {
			t.Fatal("the planted bug was not caught")
		}
		t.Logf("caught: %v", err)
	})
}

// errIf turns a check's message ("" when all is well) into an error.
func errIf(msg string) error {
	if msg == "" {
		return nil
	}
	return errors.New(msg)
}

// newNodeWithBugs is NewNode(cfg) with bugs planted.
func newNodeWithBugs(t testing.TB, cfg Config, bugs plantedbugs.Bugs) *Node {
	t.Helper()
	cfg.bugs = bugs
	n, err := NewNode(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
