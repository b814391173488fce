package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newVersionCmd) }

// buildInfo is what `holdfast version` reports.
type buildInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
	Revision  string `json:"vcs_revision,omitempty"`
	Time      string `json:"vcs_time,omitempty"`
	Modified  bool   `json:"vcs_modified,omitempty"`
}

// readBuildInfo fills buildInfo from the linker variable `version` and from
// the VCS stamps Go embeds (`go build` in a git checkout; `go run` omits
// them, so the revision is optional).
func readBuildInfo() buildInfo {
	bi := buildInfo{Version: version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return bi
	}
	if bi.Version == "" || bi.Version == "0.1.0-dev" {
		// A `go install module@vX.Y.Z` build knows its module version.
		if v := info.Main.Version; v != "" && v != "(devel)" {
			bi.Version = v
		}
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			bi.Revision = s.Value
		case "vcs.time":
			bi.Time = s.Value
		case "vcs.modified":
			bi.Modified = s.Value == "true"
		}
	}
	return bi
}

func (bi buildInfo) print(w io.Writer) {
	fmt.Fprintf(w, "holdfast %s\n", bi.Version)
	fmt.Fprintf(w, "go:       %s %s\n", bi.GoVersion, bi.Platform)
	if bi.Revision != "" {
		rev := bi.Revision
		if bi.Modified {
			rev += " (modified)"
		}
		fmt.Fprintf(w, "revision: %s\n", rev)
	}
	if bi.Time != "" {
		fmt.Fprintf(w, "built:    %s\n", bi.Time)
	}
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, Go version and VCS revision of this binary",
		Example: `  holdfast version
  holdfast version --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bi := readBuildInfo()
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(bi)
			}
			bi.print(cmd.OutOrStdout())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
