package gossip

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// The rebalancer's link to the regions: it reads their digests (and other
// daemons' advice, to stand by) and publishes advice. It lives here so that
// gossip stays the only package that speaks NATS and knows the subjects;
// the rebalancer does not dial NATS itself.

// ErrNotConnectedAdvice is returned by AdviceChannel.Publish while the
// connection is down: advice computed from stale digests is not queued.
var ErrNotConnectedAdvice = errors.New("gossip: advice channel not connected to NATS")

// AdviceConfig configures an AdviceChannel. Zero values take the defaults
// noted.
type AdviceConfig struct {
	URL     string // NATS server URL(s), comma-separated
	Cluster string // subject namespace of the regions
	Name    string // NATS client name
	Auth    Auth

	ReconnectWait time.Duration // between reconnect attempts (250ms)
	// PendingLimit bounds the messages the client keeps per subscription
	// before it drops (4096); bytes are bounded at 64 MiB. Digests are
	// small and frequent: a slow consumer must not make the client drop
	// them before they reach its own bounded queue.
	PendingLimit int

	// Connection state hooks, all optional; they run on the NATS client's
	// goroutines. OnConnect runs when the first connection comes up in the
	// background, OnReconnect with the client's reconnect count.
	OnConnect    func()
	OnDisconnect func(err error)
	OnReconnect  func(url string, reconnects uint64)
	// Keys signs the advice published and verifies the digests and advice
	// received (nil: an unsigned cluster). Build it with NewKeyring for
	// RebalancerSigner, the rebalancer's seed and the regions' public keys.
	Keys *Keyring
	// OnReject, if set, hears a received message dropped because its
	// signature did not verify (reason "signature").
	OnReject func(reason, subject string, err error)
	// OnFlushError, if set, hears a failed flush of the subscriptions at
	// start (the channel keeps going: the server has them or will).
	OnFlushError func(err error)
}

// AdviceChannel subscribes to a cluster's digests and advice and publishes
// advice, over one NATS connection (DialOptions: endless reconnects, no
// buffering while disconnected).
type AdviceChannel struct {
	nc      *nats.Conn
	subject string
	keys    *Keyring
	buf     []byte
}

// DialAdvice connects (retrying forever in the background if NATS is not
// reachable yet) and subscribes to the digests of every region and to the
// advice subject; deliver gets each message's subject and payload on the
// client's goroutine and must not block. ctx bounds the initial
// subscription flush (at most 5s).
func DialAdvice(ctx context.Context, cfg AdviceConfig, deliver func(subject string, data []byte)) (*AdviceChannel, error) {
	if err := ValidCluster(cfg.Cluster); err != nil {
		return nil, err
	}
	if cfg.ReconnectWait <= 0 {
		cfg.ReconnectWait = 250 * time.Millisecond
	}
	if cfg.PendingLimit <= 0 {
		cfg.PendingLimit = 4096
	}
	opts := append(DialOptions(cfg.Name, cfg.ReconnectWait, cfg.Auth),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if cfg.OnDisconnect != nil {
				cfg.OnDisconnect(err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			if cfg.OnReconnect != nil {
				cfg.OnReconnect(nc.ConnectedUrl(), nc.Reconnects)
			}
		}),
		nats.ConnectHandler(func(*nats.Conn) {
			if cfg.OnConnect != nil {
				cfg.OnConnect()
			}
		}),
	)
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", cfg.URL, err)
	}
	a := &AdviceChannel{nc: nc, subject: AdviceSubject(cfg.Cluster), keys: cfg.Keys}
	handler := func(msg *nats.Msg) {
		payload, err := openAdviceChannel(cfg.Keys, msg.Subject, msg.Data)
		if err != nil {
			if cfg.OnReject != nil {
				cfg.OnReject("signature", msg.Subject, err)
			}
			return
		}
		deliver(msg.Subject, payload)
	}
	for _, subject := range []string{DigestWildcard(cfg.Cluster), a.subject} {
		sub, err := nc.Subscribe(subject, handler)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("subscribe to %s: %w", subject, err)
		}
		_ = sub.SetPendingLimits(cfg.PendingLimit, 64<<20)
	}
	if nc.IsConnected() {
		fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
		err := nc.FlushWithContext(fctx)
		fcancel()
		if err != nil && ctx.Err() == nil && cfg.OnFlushError != nil {
			cfg.OnFlushError(err)
		}
	}
	return a, nil
}

// Connected reports whether the channel is connected to NATS now.
func (a *AdviceChannel) Connected() bool { return a.nc.IsConnected() }

// Publish sends an encoded advice on the cluster's advice subject, signed
// when the channel has a signing key. It fails at once while the
// connection is down (nothing is buffered). Not safe for concurrent use.
func (a *AdviceChannel) Publish(advice []byte) error {
	if !a.nc.IsConnected() {
		return ErrNotConnectedAdvice
	}
	a.buf = a.keys.Seal(a.buf[:0], a.subject, advice, time.Now())
	if err := a.nc.Publish(a.subject, a.buf); err != nil {
		return fmt.Errorf("gossip: publish advice: %w", err)
	}
	return nil
}

// Close closes the connection.
func (a *AdviceChannel) Close() { a.nc.Close() }

// openAdviceChannel verifies a digest (signed by the region its subject
// names) or an advice (signed by the rebalancer) and returns its payload.
func openAdviceChannel(k *Keyring, subject string, data []byte) ([]byte, error) {
	env, err := k.Open(subject, data)
	if err != nil || !k.Signed() {
		return env.Payload, err
	}
	want := RebalancerSigner
	if s, perr := ParseSubject(subject); perr == nil && s.Kind == KindDigest {
		want = s.Region
	}
	if env.Signer != want {
		return nil, fmt.Errorf("%w: message on %s signed by %q", ErrSignature, subject, env.Signer)
	}
	return env.Payload, nil
}
