package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/holdfast-io/holdfast/client"
)

func init() { commands = append(commands, newHoldsCmd) }

func newHoldsCmd() *cobra.Command {
	var (
		cf     clientFlags
		opts   client.ListOptions
		before string
		max    int
	)
	cmd := &cobra.Command{
		Use:   "holds",
		Short: "List the holds the answering region owns (by cart, state, SKU, deadline)",
		Long: `Holds lists the holds of the answering region, following the listing's
cursor page by page: one line per hold (id, state, cart, items, deadline).
Terminal holds stay listable for the region's hold_retain (7 days by default).
With --json it prints one hold per line (NDJSON).`,
		Example: `  holdfast holds --cart c-8812
  holdfast holds --state expired --expires-before 2026-03-02T00:00:00Z --max 50`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if before != "" {
				t, err := time.Parse(time.RFC3339, before)
				if err != nil {
					return fmt.Errorf("--expires-before must be RFC 3339 like 2026-03-01T02:00:00Z, got %q", before)
				}
				opts.ExpiresBefore = t
			}
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			n := 0
			for h, err := range c.ListHolds(cmd.Context(), opts) {
				if err != nil {
					return cf.fail(cmd, err)
				}
				if max > 0 && n == max {
					break
				}
				n++
				if cf.json {
					writeJSONLine(w, h)
					continue
				}
				parts := make([]string, 0, len(h.Items))
				for _, it := range h.Items {
					if it.Granted != nil {
						parts = append(parts, fmt.Sprintf("%s×%d of %d", it.SKU, *it.Granted, it.Qty))
					} else {
						parts = append(parts, fmt.Sprintf("%s×%d", it.SKU, it.Qty))
					}
				}
				cart := h.Cart
				if cart == "" {
					cart = "-"
				}
				fmt.Fprintf(w, "%s  %-9s  %s  %s  expires %s\n", h.ID, h.State, cart, strings.Join(parts, ","), h.ExpiresAt.Format(time.RFC3339))
			}
			if !cf.json {
				fmt.Fprintf(w, "%d holds\n", n)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.Cart, "cart", "", "only holds of this cart reference")
	fs.StringVar(&opts.State, "state", "", "only holds in this state: held, confirmed, released, expired")
	fs.StringVar(&opts.SKU, "sku", "", "only holds with a line of this SKU")
	fs.StringVar(&before, "expires-before", "", "only holds whose deadline is before this RFC 3339 time")
	fs.IntVar(&opts.Limit, "page", 0, "page size asked of the region, 1-1000 (0: its default, 100)")
	fs.IntVar(&max, "max", 0, "stop after this many holds (0: all)")
	cf.add(cmd)
	return cmd
}

func writeJSONLine(w io.Writer, v any) {
	b, _ := json.Marshal(v)
	w.Write(append(b, '\n'))
}
