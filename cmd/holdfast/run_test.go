package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func TestTextLogger(t *testing.T) {
	if _, err := textLogger("loud"); err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Fatalf("bad level: %v", err)
	}
	log, err := textLogger("warn")
	if err != nil {
		t.Fatal(err)
	}
	if ctx := context.Background(); log.Enabled(ctx, slog.LevelInfo) || !log.Enabled(ctx, slog.LevelWarn) {
		t.Fatal("a warn logger does not log exactly warn and above")
	}
}

func TestSignalContextFollowsTheCommand(t *testing.T) {
	ctx, stop := signalContext(&cobra.Command{}) // no context: Background
	defer stop()
	if ctx.Err() != nil {
		t.Fatal("context done before any signal")
	}
	parent, cancel := context.WithCancel(context.Background())
	cmd := &cobra.Command{}
	cmd.SetContext(parent)
	ctx2, stop2 := signalContext(cmd)
	defer stop2()
	cancel()
	select {
	case <-ctx2.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("not cancelled with the command's context")
	}
}
