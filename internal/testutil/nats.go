package testutil

import (
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/holdfast-io/holdfast/escrow"
)

// NATS starts a nats-server on 127.0.0.1 with a free port, configured as
// holdfast's embedded one (gossip.RunEmbedded: payloads up to the escrow
// codec's bound; JetStream on, its file store in a temp dir), and returns it with its client URL. It stops when the
// test ends. testutil starts the server itself rather than through gossip
// so that the internal tests of gossip and region can use it.
func NATS(t testing.TB) (*server.Server, string) {
	t.Helper()
	return NATSOnPort(t, -1)
}

// NATSOnPort is NATS on a given port (-1: a free one). A test that
// restarts a server on the port it had before passes that port here.
func NATSOnPort(t testing.TB, port int) (*server.Server, string) {
	t.Helper()
	s := NATSWithOptions(t, &server.Options{Port: port, JetStream: true, StoreDir: t.TempDir()})
	return s, s.ClientURL()
}

// NATSWithOptions starts a nats-server from opts as given (cluster routes,
// authorisation, JetStream ...). Host defaults to 127.0.0.1 and Port to a
// free one; logging and signal handling are off. It stops with the test.
func NATSWithOptions(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port == 0 {
		opts.Port = -1
	}
	opts.NoLog, opts.NoSigs = true, true
	if opts.MaxPayload < escrow.MaxMessageBytes+4096 {
		opts.MaxPayload = escrow.MaxMessageBytes + 4096
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatalf("nats-server %q not ready in 10s", opts.ServerName)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// NATSRouted starts a nats-server named name with a cluster port on
// loopback, soliciting a route to routeTo (host:port) when it is not
// empty: the building block of multi-server partition tests.
func NATSRouted(t testing.TB, name, routeTo string) *server.Server {
	t.Helper()
	opts := &server.Options{ServerName: name,
		Cluster: server.ClusterOpts{Name: "hf", Host: "127.0.0.1", Port: -1, NoAdvertise: true, PoolSize: -1}}
	if routeTo != "" {
		opts.Routes = []*url.URL{{Scheme: "nats-route", Host: routeTo}}
	}
	return NATSWithOptions(t, opts)
}
