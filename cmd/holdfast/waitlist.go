package main

// holdfast waitlist get|cancel: follow or leave a waitlist entry (a hold
// created with --wait that found its SKU sold out).

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/holdfast-io/holdfast/client"
)

func init() { commands = append(commands, newWaitlistCmd) }

func newWaitlistCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "waitlist",
		Short: "Follow or leave a waitlist entry (holds created with --wait)",
		Long: `A hold created with --wait that finds its SKU sold out joins the region's
waitlist. Units that come back go to waiting entries in placement order (per
SKU); a promoted entry names the hold it became.`,
	}
	op := func(use, short string, call func(*client.Client, context.Context, string) (*client.WaitlistEntry, error)) *cobra.Command {
		return idOpCmd(use+" ENTRY_ID", short, "", "", call, (*clientFlags).printWait)
	}
	cmd.AddCommand(
		op("get", "Show a waitlist entry: state, position per item, the hold once promoted", (*client.Client).GetWaitlistEntry),
		op("cancel", "Leave the waitlist (a promoted entry cannot be cancelled: release its hold)", (*client.Client).CancelWaitlistEntry),
	)
	return cmd
}

func (f *clientFlags) printWait(cmd *cobra.Command, e *client.WaitlistEntry) error {
	w := cmd.OutOrStdout()
	if f.json {
		writeRaw(w, e.Raw)
		return nil
	}
	fmt.Fprintf(w, "%s  %s (waitlist)", e.ID, e.State)
	if e.Replayed {
		fmt.Fprint(w, "  (existing entry: idempotent retry)")
	}
	fmt.Fprintln(w)
	parts := make([]string, 0, len(e.Items))
	for i, it := range e.Items {
		p := fmt.Sprintf("%s×%d", it.SKU, it.Qty)
		if i < len(e.Position) {
			p += fmt.Sprintf(" (position %d)", e.Position[i])
		}
		parts = append(parts, p)
	}
	fmt.Fprintf(w, "  items:    %s\n", strings.Join(parts, ", "))
	line := e.ExpiresAt.UTC().Format(time.RFC3339)
	if e.State == "waiting" {
		line += fmt.Sprintf(" (in %v)", time.Until(e.ExpiresAt).Round(time.Second))
	}
	fmt.Fprintf(w, "  waits until: %s\n", line)
	if e.HoldID != "" {
		fmt.Fprintf(w, "  hold:     %s\n", e.HoldID)
	}
	return nil
}
