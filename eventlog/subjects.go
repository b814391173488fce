package eventlog

import (
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// DefaultStream is the JetStream stream events are published to.
const DefaultStream = "HOLDFAST_EVENTS"

// DefaultDuplicateWindow is the duplicate window of a stream the relay
// creates: re-sends after a relay crash come within seconds.
const DefaultDuplicateWindow = 2 * time.Minute

// Source is what the relay publishes: an Outbox, or a fake in tests.
type Source interface {
	// Read returns up to limit records after seq after, in order, none
	// beyond Head.
	Read(after uint64, limit int) ([]Record, error)
	// Head is the last sequence that may be read.
	Head() uint64
	// Notify signals that Head moved.
	Notify() <-chan struct{}
}

// CursorStore keeps the relay's cursor across restarts.
type CursorStore interface {
	Cursor() (uint64, error)
	SaveCursor(seq uint64) error
}

// Subject is the subject of an event of kind k of region in cluster:
// holdfast.<cluster>.events.<region>.<kind>, e.g.
// holdfast.prod.events.eu.hold.confirmed.
func Subject(cluster, region string, k escrow.EventKind) string {
	return SubjectPrefix(cluster) + region + "." + k.String()
}

// SubjectPrefix starts every event subject of cluster.
func SubjectPrefix(cluster string) string { return "holdfast." + cluster + ".events." }
