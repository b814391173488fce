package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/holdfast-io/holdfast/gossip"
)

func runKeys(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"keys"}, args...))
	err := root.Execute()
	return strings.TrimSpace(out.String()), err
}

func TestKeysCreatesSeedAndPrintsPublicKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eu.nk")
	pub, err := runKeys(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if !nkeys.IsValidPublicUserKey(pub) {
		t.Fatalf("printed %q, not a user public key", pub)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("seed file mode %#o, want 0600", st.Mode().Perm())
	}
	seed, err := gossip.LoadSeedFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := gossip.ParseSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := kp.PublicKey(); got != pub {
		t.Fatalf("seed's public key %s, printed %s", got, pub)
	}
	// --public prints the same key; a second create refuses to overwrite.
	if again, err := runKeys(t, "--public", path); err != nil || again != pub {
		t.Fatalf("--public: %q, %v; want %q", again, err, pub)
	}
	if _, err := runKeys(t, path); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second create: %v, want a refusal to overwrite", err)
	}
	if seed2, _ := gossip.LoadSeedFile(path); !bytes.Equal(seed, seed2) {
		t.Fatal("the seed file changed")
	}
}

func TestKeysRefusesReadableSeed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eu.nk")
	if _, err := runKeys(t, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runKeys(t, "--public", path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group/other-readable seed: %v, want a refusal naming chmod 600", err)
	}
}
