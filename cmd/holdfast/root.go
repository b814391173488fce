package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

var version = "0.1.0-dev"

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "holdfast",
		Short:         "Inventory holds that never oversell, in every region, under partition",
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version prints the same as the version subcommand's first line,
		// with the VCS-aware version rather than the linker default.
		Version: readBuildInfo().Version,
	}
	root.SetVersionTemplate("holdfast {{.Version}}\n")
	for _, add := range commands {
		root.AddCommand(add())
	}
	hideEmptyListDefaults(root)
	return root
}

// hideEmptyListDefaults blanks the "[]" default of list flags that pflag
// does not recognise as empty (uint slices, for one), so that help does not
// end such a flag's line with "(default [])".
func hideEmptyListDefaults(cmd *cobra.Command) {
	hide := func(f *pflag.Flag) {
		if f.DefValue == "[]" {
			f.DefValue = ""
		}
	}
	cmd.Flags().VisitAll(hide)
	cmd.PersistentFlags().VisitAll(hide)
	for _, c := range cmd.Commands() {
		hideEmptyListDefaults(c)
	}
}

// commands is filled by the init functions of the files of this package,
// one per subcommand, so that subcommands can be added independently.
var commands []func() *cobra.Command
