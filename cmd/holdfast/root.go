package main

import "github.com/spf13/cobra"

var version = "0.1.0-dev"

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "holdfast",
		Short:         "Inventory holds that never oversell, in every region, under partition",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, add := range commands {
		root.AddCommand(add())
	}
	return root
}

// commands is filled by the init functions of the files of this package,
// one per subcommand, so that subcommands can be added independently.
var commands []func() *cobra.Command
