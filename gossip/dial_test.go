package gossip

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestDialOptions(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "x.creds")
	if err := os.WriteFile(creds, []byte("not read until connect"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := nats.GetDefaultOptions()
	for _, opt := range DialOptions("holdfast-x", 300*time.Millisecond, Auth{CredsFile: creds}) {
		if err := opt(&o); err != nil {
			t.Fatal(err)
		}
	}
	if o.Name != "holdfast-x" || o.MaxReconnect != -1 || o.ReconnectWait != 300*time.Millisecond ||
		!o.RetryOnFailedConnect || o.ReconnectBufSize != -1 {
		t.Fatalf("options: name %q, max reconnect %d, wait %v, retry %v, buffer %d",
			o.Name, o.MaxReconnect, o.ReconnectWait, o.RetryOnFailedConnect, o.ReconnectBufSize)
	}
	if o.UserJWT == nil || o.TLSConfig != nil {
		t.Fatalf("auth: credentials set %v, TLS set %v", o.UserJWT != nil, o.TLSConfig != nil)
	}
	if n := len(DialOptions("x", time.Second, Auth{})); n != 5 {
		t.Fatalf("%d options without auth, want 5", n)
	}
}
