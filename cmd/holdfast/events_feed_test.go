package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/client"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"github.com/holdfast-io/holdfast/internal/testutil/testapi"
	"github.com/holdfast-io/holdfast/region"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.b.String()), "\n")
}

// TestEventsTailFeed: `events tail --url` prints the events already held
// (--after 0), then each new one as it commits, one line each.
func TestEventsTailFeed(t *testing.T) {
	_, base := testapi.StartRegion(t, region.Config{Name: "eu", DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	c, err := client.New(base, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 3; i++ {
		if _, err := c.Restock(ctx, "A", 2); err != nil {
			t.Fatal(err)
		}
	}
	var out lockedBuf
	done := make(chan error, 1)
	go func() { done <- tailFeed(ctx, &out, &tailOpts{url: base, after: 0}) }()
	testutil.Eventually(t, 10*time.Second, "3 events printed", func() bool { return len(out.lines()) == 3 })
	if _, err := c.WriteOff(ctx, "A", 1); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the write-off printed as it commits", func() bool {
		l := out.lines()
		return len(l) == 4 && strings.Contains(l[3], "eu:4") && strings.Contains(l[3], "stock.written_off")
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if head, err := c.EventsHead(context.Background()); err != nil || head != 4 {
		t.Fatalf("head %d %v", head, err)
	}
}
