// Signed messages: every message a region (or the rebalancer) publishes is
// wrapped in an envelope signed with its ed25519 key (an nkeys user key),
// and a receiver accepts it only if the signature verifies against the
// public key the membership lists for the signer, and the signer is the
// region the message speaks for (Message.From, ForwardRequest.From).

package gossip

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nkeys"
	dto "github.com/prometheus/client_model/go"
)

// Envelope wire format (version 1):
//
//	'h' 's' version signer-len signer time(8, unix ns, big endian) nonce(8) payload sig(64)
//
// The signature covers a context string (the subject the message is
// published on; for a forward reply, the request's signature), a zero
// byte, and every envelope byte before the signature. Binding the subject
// means a signed message cannot be re-published on another subject (rows
// of eu as a directed answer to us, a request for eu sent to us). The
// magic differs from escrow's ('h' 'f'), so a receiver tells a signed
// message from an unsigned one by its first two bytes.
const (
	envMagic0, envMagic1 = 'h', 's'
	EnvelopeVersion      = 1
	sigLen               = 64
	// MaxEnvelopeOverhead is what an envelope adds to its payload at most.
	MaxEnvelopeOverhead = 4 + maxSignerLen + 16 + sigLen
	maxSignerLen        = 64

	// RebalancerSigner is the signer name of the rebalancer's advice. It is
	// not a valid region name, so no region can speak as the rebalancer.
	RebalancerSigner = "@rebalancer"
)

// ErrSignature is wrapped by every envelope verification failure.
var ErrSignature = errors.New("gossip: bad signature")

// Envelope is an opened signed message.
type Envelope struct {
	Signer  string
	Time    time.Time
	Nonce   uint64
	Payload []byte
	Sig     []byte // the signature (binds a forward reply to its request)
}

// Keyring holds the key a process signs with and the public keys it
// verifies peers with. A nil *Keyring is an unsigned cluster: messages go
// out as plain escrow encodings and unsigned messages are accepted. A
// keyring with public keys accepts only messages signed by one of them.
type Keyring struct {
	self     nkeys.KeyPair // nil: this process does not sign
	priv     ed25519.PrivateKey
	selfName string
	pub      map[string]nkeys.KeyPair // signer name -> public key
	raw      map[string]ed25519.PublicKey
	nonce    atomic.Uint64
}

// NewKeyring builds the keyring of signer selfName (a region name, or
// RebalancerSigner) from its seed and the cluster's public keys: members
// maps region names to nkeys user public keys, rebalancerKey is the
// rebalancer's (may be empty: no advice is accepted then). A seed is
// required when any public key is given, and its public key must be the
// one listed for selfName (a region with another region's key, or a stale
// key, would have every message dropped by its peers).
func NewKeyring(selfName string, seed []byte, members map[string]string, rebalancerKey string) (*Keyring, error) {
	k := &Keyring{selfName: selfName, pub: map[string]nkeys.KeyPair{}}
	for name, pk := range members {
		if pk == "" {
			continue
		}
		kp, err := parsePublic(pk)
		if err != nil {
			return nil, fmt.Errorf("gossip: public key of %s: %w", name, err)
		}
		k.pub[name] = kp
	}
	if len(k.pub) > 0 && len(k.pub) != len(members) {
		for name, pk := range members {
			if pk == "" {
				return nil, fmt.Errorf("gossip: member %s has no public key while others have (a cluster is signed or not, as a whole)", name)
			}
		}
	}
	if rebalancerKey != "" {
		kp, err := parsePublic(rebalancerKey)
		if err != nil {
			return nil, fmt.Errorf("gossip: rebalancer public key: %w", err)
		}
		k.pub[RebalancerSigner] = kp
	}
	if len(seed) > 0 {
		kp, err := ParseSeed(seed)
		if err != nil {
			return nil, err
		}
		k.self = kp
		if len(k.pub) > 0 {
			own, _ := kp.PublicKey()
			want, ok := k.pub[selfName]
			if !ok {
				return nil, fmt.Errorf("gossip: the membership lists no public key for %s", selfName)
			}
			if w, _ := want.PublicKey(); w != own {
				return nil, fmt.Errorf("gossip: the signing key's public key %s is not the one listed for %s (%s)", own, selfName, w)
			}
		}
	}
	if len(k.pub) > 0 && k.self == nil {
		return nil, fmt.Errorf("gossip: the membership lists public keys but %s has no signing key (signing_key_file)", selfName)
	}
	if k.self == nil && len(k.pub) == 0 {
		return nil, nil // unsigned cluster
	}
	// nkeys derives the ed25519 key from the seed on every Sign: keep the
	// raw keys, so a message costs one signature, not a key derivation too.
	k.raw = make(map[string]ed25519.PublicKey, len(k.pub))
	for name, kp := range k.pub {
		pk, _ := kp.PublicKey()
		b, err := nkeys.Decode(nkeys.PrefixByteUser, []byte(pk))
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("gossip: public key of %s: cannot decode", name)
		}
		k.raw[name] = ed25519.PublicKey(b)
	}
	if k.self != nil {
		enc, err := k.self.PrivateKey()
		if err != nil {
			return nil, fmt.Errorf("gossip: signing key: %w", err)
		}
		b, err := nkeys.Decode(nkeys.PrefixBytePrivate, enc)
		if err != nil || len(b) != ed25519.PrivateKeySize {
			return nil, errors.New("gossip: signing key: cannot decode its private key")
		}
		k.priv = ed25519.PrivateKey(b)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	k.nonce.Store(binary.BigEndian.Uint64(b[:]))
	return k, nil
}

func parsePublic(pk string) (nkeys.KeyPair, error) {
	if !nkeys.IsValidPublicUserKey(pk) {
		return nil, fmt.Errorf("%q is not an nkeys user public key (U...)", pk)
	}
	return nkeys.FromPublicKey(pk)
}

// ParseSeed reads an nkeys user seed (the content of a `holdfast keys`
// file; surrounding white space is ignored).
func ParseSeed(seed []byte) (nkeys.KeyPair, error) {
	s := trimSpace(seed)
	kp, err := nkeys.FromSeed(s)
	if err != nil {
		return nil, fmt.Errorf("gossip: signing key: %w", err)
	}
	pk, _ := kp.PublicKey()
	if !nkeys.IsValidPublicUserKey(pk) {
		return nil, errors.New("gossip: signing key: not a user seed (SU...)")
	}
	return kp, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// Signed reports whether this keyring verifies: peers' messages must be
// signed by a listed key.
func (k *Keyring) Signed() bool { return k != nil && len(k.pub) > 0 }

// Signs reports whether this keyring signs what it sends.
func (k *Keyring) Signs() bool { return k != nil && k.self != nil }

// PublicKey is the public key this keyring signs with ("" when it does not).
func (k *Keyring) PublicKey() string {
	if !k.Signs() {
		return ""
	}
	pk, _ := k.self.PublicKey()
	return pk
}

// NextNonce returns a fresh nonce (random start, then counting).
func (k *Keyring) NextNonce() uint64 { return k.nonce.Add(1) }

// Seal wraps payload in a signed envelope for context (the subject it
// will be published on) and appends it to dst. Without a signing key it
// appends payload unchanged.
func (k *Keyring) Seal(dst []byte, context string, payload []byte, now time.Time) []byte {
	if !k.Signs() {
		return append(dst, payload...)
	}
	start := len(dst)
	dst = append(dst, envMagic0, envMagic1, EnvelopeVersion, byte(len(k.selfName)))
	dst = append(dst, k.selfName...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(now.UnixNano()))
	dst = binary.BigEndian.AppendUint64(dst, k.NextNonce())
	dst = append(dst, payload...)
	sig := ed25519.Sign(k.priv, signedInput(context, dst[start:]))
	return append(dst, sig...)
}

func signedInput(context string, body []byte) []byte {
	in := make([]byte, 0, len(context)+1+len(body))
	in = append(in, context...)
	in = append(in, 0)
	return append(in, body...)
}

// IsEnvelope reports whether data starts like a signed envelope.
func IsEnvelope(data []byte) bool {
	return len(data) >= 2 && data[0] == envMagic0 && data[1] == envMagic1
}

// ParseEnvelope splits a signed envelope without verifying it.
func ParseEnvelope(data []byte) (Envelope, error) {
	if !IsEnvelope(data) {
		return Envelope{}, fmt.Errorf("%w: not signed", ErrSignature)
	}
	if len(data) < 4 {
		return Envelope{}, fmt.Errorf("%w: truncated envelope", ErrSignature)
	}
	if data[2] != EnvelopeVersion {
		return Envelope{}, fmt.Errorf("%w: envelope version %d (this build speaks %d)", ErrSignature, data[2], EnvelopeVersion)
	}
	n := int(data[3])
	if n == 0 || n > maxSignerLen || len(data) < 4+n+16+sigLen {
		return Envelope{}, fmt.Errorf("%w: truncated envelope", ErrSignature)
	}
	e := Envelope{Signer: string(data[4 : 4+n])}
	p := 4 + n
	e.Time = time.Unix(0, int64(binary.BigEndian.Uint64(data[p:])))
	e.Nonce = binary.BigEndian.Uint64(data[p+8:])
	e.Payload = data[p+16 : len(data)-sigLen]
	e.Sig = data[len(data)-sigLen:]
	return e, nil
}

// Open verifies a signed envelope published on context and returns it.
// The signer must have a public key in the keyring. With a keyring that
// does not verify (nil, or no public keys), an unsigned message is
// returned as its own payload and a signed one is unwrapped unchecked (a
// cluster turning signing on region by region keeps replicating towards
// the regions not yet switched); with one that does, an unsigned message
// is refused.
func (k *Keyring) Open(context string, data []byte) (Envelope, error) {
	if !IsEnvelope(data) {
		if k.Signed() {
			return Envelope{}, fmt.Errorf("%w: unsigned message in a signed cluster", ErrSignature)
		}
		return Envelope{Payload: data}, nil
	}
	e, err := ParseEnvelope(data)
	if err != nil {
		return Envelope{}, err
	}
	if !k.Signed() {
		return e, nil
	}
	pk, ok := k.raw[e.Signer]
	if !ok {
		return Envelope{}, fmt.Errorf("%w: no public key for signer %q", ErrSignature, e.Signer)
	}
	if !ed25519.Verify(pk, signedInput(context, data[:len(data)-sigLen]), e.Sig) {
		return Envelope{}, fmt.Errorf("%w: signature of %q does not verify", ErrSignature, e.Signer)
	}
	return e, nil
}

// speaksFor checks that a verified envelope's signer is the region a
// message speaks for (advice: the rebalancer). Unsigned envelopes of an
// unsigned cluster pass.
func (k *Keyring) speaksFor(e *Envelope, from string, advice bool) error {
	if !k.Signed() {
		return nil
	}
	want := from
	if advice {
		want = RebalancerSigner
	}
	if e.Signer != want {
		return fmt.Errorf("%w: message for %q signed by %q", ErrSignature, want, e.Signer)
	}
	return nil
}

// GenerateSeed creates a new nkeys user key pair and returns its seed and
// public key.
func GenerateSeed() (seed []byte, public string, err error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, "", err
	}
	seed, err = kp.Seed()
	if err != nil {
		return nil, "", err
	}
	public, err = kp.PublicKey()
	return seed, public, err
}

// maxNoncesPerPeer bounds the remembered forwarded commands of one signer
// within ForwardWindow (about 4,000 a second for the default 30s).
const maxNoncesPerPeer = 1 << 17

// keyring builds the transport's keyring from its configuration.
func (c *Config) keyring() (*Keyring, error) {
	if c.Keys != nil {
		return c.Keys, nil
	}
	var seed []byte
	if c.SigningKeyFile != "" {
		b, err := LoadSeedFile(c.SigningKeyFile)
		if err != nil {
			return nil, fmt.Errorf("gossip: %w", err)
		}
		seed = b
	}
	return NewKeyring(c.Region, seed, c.MemberKeys, c.RebalancerKey)
}

// RejectedCount is the number of inbound messages dropped for reason
// (holdfast_gossip_rejected_total{reason}); for tools and the demo.
func (t *Transport) RejectedCount(reason string) float64 {
	var m dto.Metric
	if err := t.m.rejected.WithLabelValues(reason).Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
