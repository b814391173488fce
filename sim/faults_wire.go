package sim

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"strconv"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// replayOldest is how old a message must be to be replayed: minutes, not
// the milliseconds of a duplicate.
const replayOldest = time.Minute

// replayBurst delivers n kept messages at least replayOldest old again, to
// the endpoint they were sent to, 5 ms apart.
func (w *world) replayBurst(n int) {
	var old []int
	for i := range w.nf.replays {
		if w.now-w.nf.replays[i].at >= int64(replayOldest) {
			old = append(old, i)
		}
	}
	if len(old) == 0 {
		return
	}
	for k := 0; k < n; k++ {
		rec := &w.nf.replays[old[w.nf.rng.IntN(len(old))]]
		w.countFault(FaultReplay, 1)
		w.q.push(event{at: w.now + int64(k)*int64(5*time.Millisecond), kind: evMsg, node: int32(rec.dst), msg: rec.msg})
	}
}

// wireSigner stands for the transport of a signed cluster (package gossip,
// which the simulator may not import: docs/architecture.md, "Layering"):
// every endpoint signs what it sends with its ed25519 key, over the
// subject and the payload, and a receiver refuses what does not verify.
type wireSigner struct {
	priv map[string]ed25519.PrivateKey
	pub  map[string]ed25519.PublicKey
	buf  []byte
}

// newWireSigner derives every endpoint's key from the seed.
func newWireSigner(seed uint64, eps []*endpoint) *wireSigner {
	ws := &wireSigner{priv: map[string]ed25519.PrivateKey{}, pub: map[string]ed25519.PublicKey{}}
	for _, ep := range eps {
		raw := sha256.Sum256([]byte(ep.name + "/" + strconv.FormatUint(seed, 10)))
		k := ed25519.NewKeyFromSeed(raw[:])
		ws.priv[ep.name], ws.pub[ep.name] = k, k.Public().(ed25519.PublicKey)
	}
	return ws
}

// signed is the input of a signature: the subject, a zero byte, the
// payload (as gossip.Keyring signs).
func signed(subject string, payload []byte) []byte {
	in := make([]byte, 0, len(subject)+1+len(payload))
	in = append(in, subject...)
	in = append(in, 0)
	return append(in, payload...)
}

// corrupt sends m from src to dst through the signed transport with a few
// bits flipped on the way. It returns the message the receiver accepts,
// or nil when the envelope or the codec refuses it. A message accepted
// with other contents than those sent is counted in CorruptAccepted: the
// checker corrupt_accepted.
func (w *world) corrupt(src, dst int, m *escrow.Message) *escrow.Message {
	ws := w.nf.wire
	w.countFault(FaultCorrupt, 1)
	orig, err := escrow.EncodeMessage(nil, m)
	if err != nil {
		return m
	}
	subject := "holdfast.sim." + w.eps[dst].name
	from := w.eps[src].name
	env := append(append([]byte(nil), orig...), ed25519.Sign(ws.priv[from], signed(subject, orig))...)
	for n := 1 + w.nf.rng.IntN(3); n > 0; n-- {
		i := w.nf.rng.IntN(len(env))
		env[i] ^= 1 << w.nf.rng.IntN(8)
	}
	payload := env[:len(env)-ed25519.SignatureSize]
	// The bug skip-verify takes the payload without checking it.
	if !w.o.Hooks.SkipVerify && !ed25519.Verify(ws.pub[from], signed(subject, payload), env[len(payload):]) {
		return nil
	}
	dm, err := escrow.DecodeMessage(payload)
	if err != nil {
		return nil
	}
	ws.buf, _ = escrow.EncodeMessage(ws.buf[:0], &dm)
	if !bytes.Equal(ws.buf, orig) {
		w.res.CorruptAccepted++
		if w.res.CorruptAccepted == 1 {
			w.fail("corrupt_accepted: a corrupted %s from %s to %s was accepted", m.Type, w.eps[src].name, w.eps[dst].name)
		}
	}
	return &dm
}
