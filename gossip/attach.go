package gossip

import (
	"context"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// This file is the one place a *region.Region is joined to its peers over
// NATS; the CLI, the demo and the tests that run real regions all go
// through it, so the wiring (inbox, resync hook, replication lag source,
// shutdown order) cannot drift between them.

// A region is the inbox AttachRegion connects, and it wants the resync.
var (
	_ Inbox    = (*region.Region)(nil)
	_ Resyncer = (*region.Region)(nil)
)

// ConfigFor is the transport configuration of region rc: its NATS URL,
// cluster (default "holdfast"), name, membership, logger, signing
// key file, the membership's public keys, the inbox prefix and the peer
// limits (repair rate, answer bytes, forward window). Callers
// add credentials, a Registerer and tuning before AttachRegion.
func ConfigFor(rc region.Config) Config {
	cluster := rc.Cluster
	if cluster == "" {
		cluster = "holdfast"
	}
	members := rc.MemberNames()
	if len(members) == 0 {
		e := rc.Escrow
		e.Region = rc.Name
		members = e.Membership() // escrow.members, or the deprecated escrow.peers
	}
	var keys map[string]string
	for _, m := range rc.Members {
		if keys == nil {
			keys = map[string]string{}
		}
		keys[m.Name] = m.PublicKey
	}
	return Config{
		URL:            rc.NATSURL,
		Cluster:        cluster,
		Region:         rc.Name,
		Members:        members,
		Logger:         rc.Logger,
		SigningKeyFile: rc.SigningKeyFile,
		MemberKeys:     keys,
		RebalancerKey:  rc.RebalancerPublicKey,
		InboxPrefix:    rc.NATSInboxPrefix,

		ForwardWindow:    rc.PeerLimits.ForwardWindow,
		RepairRate:       rc.PeerLimits.RepairRate,
		RepairBurst:      rc.PeerLimits.RepairBurst,
		AnswerBytesRate:  rc.PeerLimits.RepairAnswerBytesPerSec,
		AnswerBytesBurst: rc.PeerLimits.RepairAnswerBurstBytes,
		WireVersion:      rc.WireVersion,
	}
}

// AttachRegion connects a Transport for r (reconnecting forever in the
// background), with r as its inbox: r receives peer messages and forwarded
// commands, and its Resync runs on every (re)connect. Unless cfg.PeerSeqs
// is set, replication lag is measured against r's node. The transport is
// then attached to r, so r publishes through it.
//
// Shutdown order: close the returned Transport before r.Close, so that no
// forwarded command or peer message reaches a region that is closing.
func AttachRegion(ctx context.Context, r *region.Region, cfg Config) (*Transport, error) {
	if cfg.PeerSeqs == nil {
		cfg.PeerSeqs = func() map[string]uint64 { return peerSeqs(r) }
	}
	tr, err := Connect(ctx, cfg, r)
	if err != nil {
		return nil, err
	}
	r.AttachTransport(tr)
	return tr, nil
}

// peerSeqs reads the last contiguous sequence of every peer from r's node.
// It runs at metrics scrape time, so it waits at most a second for the
// apply loop.
func peerSeqs(r *region.Region) map[string]uint64 {
	out := map[string]uint64{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = r.Inspect(ctx, func(n *escrow.Node) {
		for _, p := range n.Peers() {
			out[p] = n.PeerSeq(p)
		}
	})
	return out
}
