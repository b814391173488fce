package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/holdfast-io/holdfast/client"
)

func init() { commands = append(commands, newRecountCmd) }

func newRecountCmd() *cobra.Command {
	var (
		cf      clientFlags
		asOf    string
		force   bool
		ifMatch string
		loc     string
	)
	cmd := &cobra.Command{
		Use:   "recount SKU ON_HAND",
		Short: "Set a SKU's on-hand count from the warehouse system (admin)",
		Long: `Recount tells the answering region how many units of SKU the warehouse has
on hand: units not yet sold, i.e. available + held over every region (sold
units have left the shelf). The region applies the difference from its view
as a restock or a write-off of its own slice; what it cannot write off there
(held units, units in other regions' slices) is reported as unresolved.

A recount whose --as-of is not after the last one applied is refused (409), so
re-running a night's reconciliation changes nothing. When the region has not
heard from a peer recently it refuses (503 stale-view) unless --force.`,
		Example: `  holdfast recount tshirt-red-m 120 --as-of 2026-03-01T02:00:00Z
  holdfast recount A 7 --if-match "$(curl -sI .../v1/skus/A | sed -n 's/^ETag: //p')"`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			on, err := strconv.ParseUint(args[1], 10, 64)
			if err != nil {
				return fmt.Errorf("ON_HAND must be a non-negative integer, got %q", args[1])
			}
			at := time.Now()
			if asOf != "" {
				if at, err = time.Parse(time.RFC3339, asOf); err != nil {
					return fmt.Errorf("--as-of must be RFC 3339 like 2026-03-01T02:00:00Z, got %q", asOf)
				}
			}
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			r, err := c.RecountAt(cmd.Context(), args[0], loc, client.RecountRequest{OnHand: on, AsOf: at, Force: force, IfMatch: ifMatch})
			if err != nil {
				return cf.fail(cmd, err)
			}
			if cf.json {
				writeRaw(cmd.OutOrStdout(), r.Raw)
				return nil
			}
			w := cmd.OutOrStdout()
			if rc := r.Recount; rc != nil {
				fmt.Fprintf(w, "recounted %s at %s to %d: was %d, delta %+d", r.SKU, r.Region, on, rc.Before, rc.Delta)
				if rc.Unresolved > 0 {
					fmt.Fprintf(w, ", %d not written off here (held or in other regions)", rc.Unresolved)
				}
				if rc.Forced {
					fmt.Fprintf(w, " (forced over a stale view of %v)", rc.Stale)
				}
				fmt.Fprintln(w)
			}
			printStock(w, r)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&asOf, "as-of", "", "when the warehouse counted, RFC 3339 (default: now)")
	fs.BoolVar(&force, "force", false, "apply even if the region's view of a peer is stale (logged)")
	fs.StringVar(&ifMatch, "if-match", "", "apply only if the SKU's version is still this ETag")
	fs.StringVar(&loc, "location", "", "the location counted (default: the SKU's default location)")
	cf.add(cmd)
	return cmd
}
