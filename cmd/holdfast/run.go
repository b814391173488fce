package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// signalContext is the command's context (Background when the command runs
// outside Execute, as in tests), cancelled on SIGINT or SIGTERM so that a
// long-running command shuts down cleanly.
func signalContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	parent := cmd.Context()
	if parent == nil {
		parent = context.Background()
	}
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// textLogger is a text logger on stderr at the level named by a
// --log-level flag (debug, info, warn or error).
func textLogger(level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})), nil
}

// serverGC sets a garbage-collection target suited to a region under load,
// unless the operator chose one with GOGC: the apply loop allocates a
// little per hold and little of it lives long, so collecting 4× less often
// saves CPU per hold for a bounded amount of extra heap.
func serverGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}
