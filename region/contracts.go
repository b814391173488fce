package region

import (
	"context"

	"github.com/holdfast-io/holdfast/escrow"
)

// Storage is the durable state of one region. The Pebble implementation is
// Store (store.go); tests may use others. Apply must be atomic and durable
// (synced) when it returns nil: the runtime replies and sends only after it.
type Storage interface {
	// Load returns the state to restore the node from; a corrupt store is an
	// error that names what is wrong.
	Load() (*escrow.State, error)
	// Apply writes one Ready's Persist as one batch, synced.
	Apply(p *escrow.Persist) error
	Close() error
}

// Transport carries messages between regions (gossip.Transport implements
// it). A nil Transport means a region on its own.
type Transport interface {
	// Send hands messages to the network. The runtime calls it only after
	// the Ready that produced them is durable. It must not block on the
	// network: a slow or cut link drops (anti-entropy repairs), never stalls
	// the apply loop. msgs is the Transport's during the call only (the
	// node reuses it once the Ready is Advanced): copy the messages it
	// keeps (values; their Rows stay valid).
	Send(msgs []escrow.Message)
	// Forward runs a hold command (get, confirm, release, extend) at the
	// region that owns the hold and returns its reply. It returns an error
	// wrapping ErrUnreachable when the owner cannot be reached in time.
	Forward(ctx context.Context, owner string, cmd escrow.Command) (escrow.Reply, error)
}

// Inbox is what a Transport delivers into: the region runtime implements it.
type Inbox interface {
	// Deliver enqueues a peer message for the apply loop. It never blocks:
	// when the queue is full the message is dropped and counted.
	Deliver(m escrow.Message)
	// Execute runs a command forwarded by another region on a hold this
	// region owns, and waits for its durable reply.
	Execute(ctx context.Context, cmd escrow.Command) (escrow.Reply, error)
}
