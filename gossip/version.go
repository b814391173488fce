// Wire versions during a rolling upgrade (see escrow/wire.go for the rule
// and docs/operations.md, "Rolling upgrade"): which version to write to
// whom, learnt from what peers say they speak.

package gossip

import (
	"bytes"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast-io/holdfast/escrow"
)

// wireVersions remembers the highest wire version each peer speaks.
//
// A peer speaks version 2 or later once a message of it carried Speaks
// (every version-2 message does). A peer is taken back to version 1 by a
// version-1 digest that is not the twin (same content) of its last
// version-2 digest: while a
// region of version 2 knows a member that may speak only version 1, it
// publishes each digest twice, version 2 (which old regions refuse and
// count as a decode error of reason "version") then version 1, so that old
// and new regions both read it and new regions learn it speaks 2. A region
// that was rolled back to the old release sends version-1 digests only,
// and its peers write version 1 to it again from its second digest on.
type wireVersions struct {
	self    byte            // the highest version this region speaks
	members map[string]bool // configured membership (allow-list, member keys)
	gauge   *prometheus.GaugeVec

	mu    sync.Mutex
	peers map[string]*peerWire
}

type peerWire struct {
	speaks byte
	// twin: the version-1 encoding of its last version-2 digest, which may
	// follow as a twin; nil when none is expected.
	twin []byte
}

func newWireVersions(self byte, members []string, gauge *prometheus.GaugeVec) *wireVersions {
	w := &wireVersions{self: self, members: map[string]bool{}, gauge: gauge, peers: map[string]*peerWire{}}
	for _, m := range members {
		w.members[m] = true
	}
	return w
}

// forPeer is the version to write to region to.
func (w *wireVersions) forPeer(to string) byte {
	if w.self < 2 {
		return escrow.MinWireVersion
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if p := w.peers[to]; p != nil {
		return min(p.speaks, w.self)
	}
	return escrow.MinWireVersion
}

// forAll is the version to broadcast in: the lowest every member speaks,
// where members are the configured ones and every region heard from, and
// a member not heard from yet counts as MinWireVersion.
func (w *wireVersions) forAll() byte {
	if w.self < 2 {
		return escrow.MinWireVersion
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.peers) == 0 {
		return escrow.MinWireVersion
	}
	v := w.self
	for m := range w.members {
		if p := w.peers[m]; p == nil {
			return escrow.MinWireVersion
		} else {
			v = min(v, p.speaks)
		}
	}
	for _, p := range w.peers {
		v = min(v, p.speaks)
	}
	return v
}

// observe learns from a decoded, authenticated message of a peer; it
// reports false for the version-1 twin of a digest already delivered.
func (w *wireVersions) observe(m *escrow.Message) bool {
	if m.Type == escrow.MsgAdvice || m.From == "" {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.peers[m.From]
	if p == nil {
		if len(w.peers) >= maxPeers {
			return true
		}
		p = &peerWire{speaks: escrow.MinWireVersion}
		w.peers[m.From] = p
		w.set(m.From, p.speaks)
	}
	switch {
	case m.Speaks >= 2:
		p.speaks = m.Speaks
		p.twin = nil
		if m.Type == escrow.MsgDigest {
			p.twin = v1Encoding(m)
		}
		w.set(m.From, p.speaks)
	case m.Type == escrow.MsgDigest:
		twin := p.twin
		p.twin = nil
		if twin != nil && bytes.Equal(twin, v1Encoding(m)) {
			return false
		}
		// A version-1 digest that is no twin: the peer speaks 1 now (until
		// a version-2 message of it says otherwise).
		p.speaks = escrow.MinWireVersion
		w.set(m.From, p.speaks)
	}
	return true
}

// v1Encoding is m's version-1 encoding (nil if it has none).
func v1Encoding(m *escrow.Message) []byte {
	c := *m
	c.Speaks = 0
	b, err := escrow.EncodeMessage(nil, &c)
	if err != nil {
		return nil
	}
	return b
}

func (w *wireVersions) set(peer string, v byte) {
	if w.gauge != nil {
		w.gauge.WithLabelValues(peer).Set(float64(v))
	}
}

// Speaks returns the wire version this transport writes to peer now (tests
// and diagnostics).
func (t *Transport) Speaks(peer string) byte { return t.ver.forPeer(peer) }

// stamp returns m as it is to be written: Speaks set when the addressee
// (every member, for a broadcast) reads version 2 or later, and without
// location keys when it reads only versions below 3 (ok false: nothing of
// m may be written to it).
func (t *Transport) stamp(m *escrow.Message) (out escrow.Message, ok bool) {
	out = *m
	var v byte
	if m.To != "" {
		v = t.ver.forPeer(m.To)
	} else {
		v = t.ver.forAll()
	}
	if v < 3 {
		if out, ok = escrow.WithoutLocationKeys(m); !ok {
			return out, false
		}
	}
	if v >= 2 {
		out.Speaks = t.ver.self
	}
	return out, true
}

// needsTwin reports whether a broadcast digest written as version 1 should
// first go out as version 2, so that new peers learn this region speaks it.
func (t *Transport) needsTwin(m *escrow.Message) bool {
	return m.Type == escrow.MsgDigest && m.To == "" && m.Speaks == 0 && t.ver.self >= 2
}
