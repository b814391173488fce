package gossip

import (
	"time"

	"github.com/nats-io/nats.go"
)

// Auth names the files a NATS client authenticates with; empty fields are
// not used.
type Auth struct {
	CredsFile string // NATS credentials (JWT + nkey) file
	TLSCert   string // client certificate and key for mutual TLS
	TLSKey    string
	TLSCA     string // CA bundle to verify the server
}

// DialOptions are the NATS connection options every holdfast process
// shares (the region transport and the rebalancer): a client name, endless
// reconnects every reconnectWait, also when the first connect fails, no
// buffering while disconnected (a publish into a dead link fails at once:
// rows are repaired by anti-entropy, advice is recomputed), and the
// credentials and TLS files of auth. Callers append their own handlers.
func DialOptions(name string, reconnectWait time.Duration, auth Auth) []nats.Option {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(-1),
	}
	if auth.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(auth.CredsFile))
	}
	if auth.TLSCert != "" {
		opts = append(opts, nats.ClientCert(auth.TLSCert, auth.TLSKey))
	}
	if auth.TLSCA != "" {
		opts = append(opts, nats.RootCAs(auth.TLSCA))
	}
	return opts
}
