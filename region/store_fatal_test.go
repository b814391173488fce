package region

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// A fatal report of pebble's keeps its cause: a corruption found by a
// compaction (pebble's DataCorruption listener calls Fatalf with the
// report) is still a corruption error once the store marked itself failed,
// so the region's refusal to start says why, and callers can tell.
func TestPebbleFatalKeepsCause(t *testing.T) {
	var got error
	l := &pebbleLogger{log: stLogger(t), onFatal: func(err error) { got = err }}
	details := fmt.Errorf("pebble: file 000005: bit flip found: %w", pebble.ErrCorruption)
	l.Fatalf("%s", pebble.DataCorruptionInfo{Path: "db/000005.sst", Details: details})
	if got == nil || !pebble.IsCorruptionError(got) || !errors.Is(got, details) {
		t.Fatalf("fatal report %v: want it to wrap the corruption %v", got, details)
	}
	if !strings.Contains(got.Error(), "on-disk corruption: db/000005.sst") {
		t.Fatalf("fatal report %q lost pebble's text", got)
	}
	s := &Store{}
	s.markFailed(got)
	if err := s.failed(); !errors.Is(err, ErrStoreFailed) || !pebble.IsCorruptionError(err) {
		t.Fatalf("failed store: %v, want ErrStoreFailed wrapping the corruption", err)
	}
	// A report without an error argument is its text.
	l.Fatalf("empty compaction chosen")
	if got == nil || got.Error() != "empty compaction chosen" || pebble.IsCorruptionError(got) {
		t.Fatalf("plain fatal report: %v", got)
	}
	l.Fatalf("pebble: fatal commit error: %v", errors.New("disk gone"))
	if got == nil || errors.Unwrap(got) == nil || got.Error() != "pebble: fatal commit error: disk gone" {
		t.Fatalf("fatal commit report: %v, want it to wrap its error", got)
	}
}
