package region_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// syncBuffer is a bytes.Buffer safe for the region's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDeprecatedPeersWarnsOnce: a region configured with the deprecated
// escrow.peers logs one warning saying so (and, with members also set,
// that it is ignored); one without it logs none.
func TestDeprecatedPeersWarnsOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		peers   []string
		members []region.Member
		want    string
	}{
		{"peers", []string{"us"}, nil, "escrow.peers is deprecated: list"},
		{"peers and members", []string{"us"}, []region.Member{{Name: "eu"}, {Name: "us"}}, "escrow.peers is deprecated and ignored"},
		{"members", nil, []region.Member{{Name: "eu"}, {Name: "us"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf syncBuffer
			cfg := region.Config{Name: "eu", DataDir: t.TempDir(), NoSync: true, Members: tc.members,
				Logger: slog.New(slog.NewTextHandler(&buf, nil)), Escrow: escrow.Config{Peers: tc.peers}}
			r, err := region.Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			n := strings.Count(buf.String(), "escrow.peers is deprecated")
			switch {
			case tc.want == "" && n != 0:
				t.Fatalf("warned without escrow.peers:\n%s", buf.String())
			case tc.want != "" && (n != 1 || !strings.Contains(buf.String(), tc.want)):
				t.Fatalf("want one warning %q, got %d:\n%s", tc.want, n, buf.String())
			}
		})
	}
}
