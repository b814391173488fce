package sim

import (
	"bytes"
	"crypto/sha256"
	"strconv"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/gossip"
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

// wireSigner stands for the transport of a signed cluster (package
// gossip): every endpoint seals what it sends with its ed25519 key, and a
// receiver opens it, refusing what does not verify.
type wireSigner struct {
	seal map[string]*gossip.Keyring
	open *gossip.Keyring
	buf  []byte
}

// newWireSigner derives every endpoint's key from the seed.
func newWireSigner(seed uint64, eps []*endpoint) *wireSigner {
	ws := &wireSigner{seal: map[string]*gossip.Keyring{}}
	members := map[string]string{}
	seeds := map[string][]byte{}
	for _, ep := range eps {
		raw := sha256.Sum256([]byte(ep.name + "/" + strconv.FormatUint(seed, 10)))
		kp, err := nkeys.FromRawSeed(nkeys.PrefixByteUser, raw[:])
		if err != nil {
			panic("sim: key of " + ep.name + ": " + err.Error())
		}
		s, _ := kp.Seed()
		pk, _ := kp.PublicKey()
		members[ep.name], seeds[ep.name] = pk, s
	}
	for _, ep := range eps {
		k, err := gossip.NewKeyring(ep.name, seeds[ep.name], members, "")
		if err != nil {
			panic("sim: keyring of " + ep.name + ": " + err.Error())
		}
		ws.seal[ep.name] = k
		if ws.open == nil {
			ws.open = k
		}
	}
	return ws
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
	env := ws.seal[w.eps[src].name].Seal(nil, subject, orig, baseTime.Add(time.Duration(w.now)))
	for n := 1 + w.nf.rng.IntN(3); n > 0; n-- {
		i := w.nf.rng.IntN(len(env))
		env[i] ^= 1 << w.nf.rng.IntN(8)
	}
	payload := env
	if w.o.Hooks.SkipVerify {
		// The bug: the envelope is unwrapped without checking its signature.
		e, err := gossip.ParseEnvelope(env)
		if err != nil {
			return nil
		}
		payload = e.Payload
	} else {
		e, err := ws.open.Open(subject, env)
		if err != nil {
			return nil
		}
		payload = e.Payload
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
