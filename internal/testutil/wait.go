// Package testutil is the one place test support lives: waiting on a
// condition with a deadline, embedded NATS servers on loopback, and small
// HTTP helpers. Production code never imports it.
package testutil

import (
	"testing"
	"time"
)

// pollEvery is how often a condition is polled. Polling is how a test
// observes another goroutine's progress; it is never the synchronisation
// itself, because every wait has a condition and a deadline.
const pollEvery = 5 * time.Millisecond

// WaitFor polls cond until it holds and returns how long that took. When
// the deadline passes first the test fails with what() as the reason.
func WaitFor(t testing.TB, within time.Duration, cond func() bool, what func() string) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("not within %v: %s", within, what())
		}
		time.Sleep(pollEvery)
	}
	return time.Since(start)
}

// Eventually is WaitFor with a fixed description.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return WaitFor(t, within, cond, func() string { return what })
}
