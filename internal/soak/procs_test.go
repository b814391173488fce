package soak

import (
	"errors"
	"os"
	"testing"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/client"
)

// TestSampleProc: this process has a resident size and open descriptors;
// a process that is not running has no sample.
func TestSampleProc(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	u := sampleProc(os.Getpid())
	if !u.up || u.rssKB <= 0 || u.anonKB <= 0 || u.anonKB > u.rssKB || u.fds <= 0 {
		t.Fatalf("sample of this process: %+v", u)
	}
	if u := sampleProc(0); u.up {
		t.Fatalf("sample of no process: %+v", u)
	}
}

// TestRetryable: only lost answers and answers saying "not now" are
// retried; a refusal is final (retrying it would not be a retry).
func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{errors.New("connection reset"), true},
		{&client.Error{Problem: api.Problem{Status: 503}}, true},
		{&client.Error{Problem: api.Problem{Status: 500}}, true},
		{&client.Error{Problem: api.Problem{Status: 429}}, true},
		{&client.Error{Problem: api.Problem{Status: 409}}, false},
		{&client.Error{Problem: api.Problem{Status: 404}}, false},
		{&client.Error{Problem: api.Problem{Status: 422}}, false},
	} {
		if got := retryable(tc.err); got != tc.want {
			t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
