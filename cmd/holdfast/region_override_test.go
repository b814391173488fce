package main

import (
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// A flag given on the command line overrides the config file's value; a
// flag left at its default leaves the file's value alone, even when the
// default differs from it.
func TestOverrideOnlyGivenFlags(t *testing.T) {
	f := pflag.NewFlagSet("region", pflag.ContinueOnError)
	var queue int
	var linger time.Duration
	var inline bool
	f.IntVar(&queue, "queue-len", 65536, "")
	f.DurationVar(&linger, "max-linger", time.Millisecond, "")
	f.BoolVar(&inline, "inline-commit", true, "")
	if err := f.Parse([]string{"--queue-len=7", "--inline-commit=false"}); err != nil {
		t.Fatal(err)
	}
	cfgQueue, cfgLinger, cfgNoInline := 100, 5*time.Millisecond, false
	override(f, "queue-len", &cfgQueue, queue)
	override(f, "max-linger", &cfgLinger, linger)
	override(f, "inline-commit", &cfgNoInline, !inline)
	if cfgQueue != 7 || cfgLinger != 5*time.Millisecond || !cfgNoInline {
		t.Fatalf("queue %d (want 7), linger %v (want the file's 5ms), no inline %v (want true)", cfgQueue, cfgLinger, cfgNoInline)
	}
}
