package testapi

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/holdfast-io/holdfast/gossip"
)

// NATSFromConfig starts holdfast's embedded nats-server from a
// nats-server configuration file (accounts, permissions) as "holdfast nats
// --config" does, but on 127.0.0.1 and a free port. It stops when the test
// ends.
func NATSFromConfig(t testing.TB, file string) (*server.Server, string) {
	t.Helper()
	s, u, err := gossip.RunEmbedded(gossip.EmbeddedOptions{ConfigFile: file, Host: "127.0.0.1", Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s, u
}
