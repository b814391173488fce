package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVersionFlag(t *testing.T) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"--version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "holdfast "+readBuildInfo().Version+"\n"; got != want {
		t.Fatalf("--version printed %q, want %q", got, want)
	}
}

// TestHelpHasNoEmptyListDefault: no flag's help ends in "(default [])".
func TestHelpHasNoEmptyListDefault(t *testing.T) {
	root := newRootCmd()
	for _, c := range root.Commands() {
		if u := c.Flags().FlagUsages(); strings.Contains(u, "(default [])") {
			t.Errorf("holdfast %s help shows an empty list default:\n%s", c.Name(), u)
		}
	}
}
