package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/holdfast-io/holdfast/gossip"
)

func init() { commands = append(commands, newKeysCmd) }

func newKeysCmd() *cobra.Command {
	var show bool
	cmd := &cobra.Command{
		Use:   "keys FILE",
		Short: "Create a signing key (nkeys seed, mode 0600) and print its public key",
		Example: `  holdfast keys /etc/holdfast/eu.nk          # prints UAB…: list it under members as eu's public_key
  holdfast keys --public /etc/holdfast/eu.nk # print the public key of an existing key file`,
		Long: `Each region signs every message it sends over NATS with its own ed25519 key, and
peers accept a message only if it verifies against the public key the membership
(the members list of every region's config) gives for the region it speaks for.
The rebalancer signs its advice with a key of its own (regions list it as
rebalancer_public_key). keys writes a new seed to FILE with mode 0600 (it never
overwrites) and prints the public key; point signing_key_file (region) or
--signing-key (rebalancer) at the file. Keep the seed secret: whoever holds it
speaks for the region.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if show {
				seed, err := gossip.LoadSeedFile(args[0])
				if err != nil {
					return err
				}
				kp, err := gossip.ParseSeed(seed)
				if err != nil {
					return err
				}
				pub, err := kp.PublicKey()
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), pub)
				return nil
			}
			pub, err := gossip.WriteSeedFile(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), pub)
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote the signing key to %s (mode 0600); list the public key above in the membership\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&show, "public", false, "print the public key of an existing key file instead of creating one")
	return cmd
}
