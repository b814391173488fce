package rebalancer

import (
	"errors"

	"github.com/holdfast-io/holdfast/gossip"
)

// keyring builds the rebalancer's keyring: it signs as
// gossip.RebalancerSigner and accepts advice signed with its own key (the
// key standby daemons share) and digests signed by the regions' keys.
func (c *Config) keyring() (*gossip.Keyring, error) {
	if c.SigningKeyFile == "" {
		for _, k := range c.MemberKeys {
			if k != "" {
				return nil, errors.New("region public keys are given but no signing key: advice would be dropped by every region")
			}
		}
		return nil, nil
	}
	seed, err := gossip.LoadSeedFile(c.SigningKeyFile)
	if err != nil {
		return nil, err
	}
	kp, err := gossip.ParseSeed(seed)
	if err != nil {
		return nil, err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	return gossip.NewKeyring(gossip.RebalancerSigner, seed, c.MemberKeys, pub)
}
