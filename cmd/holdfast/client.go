package main

// Client commands: thin wrappers over package client that talk to a region's
// HTTP API (docs/openapi.yaml).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/client"
)

func init() {
	commands = append(commands, newHoldCmd, newGetCmd, newConfirmCmd, newReleaseCmd, newExtendCmd,
		newStockCmd, newRestockCmd, newWriteOffCmd)
}

// Environment variables read by the client commands when the flag is not given.
const (
	envURL   = "HOLDFAST_URL"
	envToken = "HOLDFAST_TOKEN"
)

// clientFlags are the flags every client command shares.
type clientFlags struct {
	url     string
	token   string
	timeout time.Duration
	json    bool
}

func (f *clientFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.url, "url", client.DefaultURL, "region base URL (env "+envURL+")")
	fs.StringVar(&f.token, "token", "", "bearer token (env "+envToken+"); needs scope client, or admin for restock/write-off")
	fs.DurationVar(&f.timeout, "timeout", client.DefaultTimeout, "request timeout")
	fs.BoolVar(&f.json, "json", false, "print the raw JSON answer (problem+json on error)")
}

// client builds the client, taking the environment for flags not given.
func (f *clientFlags) client(cmd *cobra.Command) (*client.Client, error) {
	u, tok := f.url, f.token
	if !cmd.Flags().Changed("url") {
		if v := os.Getenv(envURL); v != "" {
			u = v
		}
	}
	if !cmd.Flags().Changed("token") {
		tok = os.Getenv(envToken)
	}
	if f.timeout <= 0 {
		return nil, fmt.Errorf("--timeout must be positive, got %v", f.timeout)
	}
	return client.New(u, client.Options{Token: tok, Timeout: f.timeout, UserAgent: "holdfast-cli/" + version})
}

// fail reports a failed request: with --json the problem body goes to
// stdout for scripts; the returned error (printed by main on stderr, exit
// status 1) carries the status and the problem's detail.
func (f *clientFlags) fail(cmd *cobra.Command, err error) error {
	var pe *client.Error
	if !errors.As(err, &pe) {
		return err
	}
	if f.json && len(pe.Body) > 0 {
		writeRaw(cmd.OutOrStdout(), pe.Body)
	}
	msg := pe.Error()
	if pe.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %v)", pe.RetryAfter)
	}
	return errors.New(msg)
}

func writeRaw(w io.Writer, raw []byte) {
	w.Write(raw)
	if len(raw) == 0 || raw[len(raw)-1] != '\n' {
		io.WriteString(w, "\n")
	}
}

func newHoldCmd() *cobra.Command {
	var (
		cf      clientFlags
		skus    []string
		qtys    []uint
		items   []string
		ttl     time.Duration
		idemKey string
		meta    string
		wait    time.Duration
		partial bool
		cart    string
		locs    []string
		split   bool
	)
	cmd := &cobra.Command{
		Use:   "hold",
		Short: "Hold units of one or more SKUs (a cart: all lines or none)",
		Long: `Hold asks a region to reserve units for a shopper until the hold's deadline
(--ttl, the region's default is 10m). The answer is the hold's id: confirm it
when the shopper pays, release it when the cart is abandoned, or let it expire.

Lines are given as --sku/--qty pairs (in order; --qty defaults to 1 for every
--sku when omitted) or as --item SKU=QTY. Retrying with the same
--idempotency-key returns the original hold instead of a second one.
--partial takes what the region can give each line (shown as granted/asked).
--location (repeat, in preference order) restricts every line to those
locations; --split lets a line be split over several of them. The answer
shows where each line's units ship from.`,
		Example: `  holdfast hold --sku tshirt-red-m --qty 1
  holdfast hold --sku A --qty 2 --sku B --qty 1 --ttl 15m
  holdfast hold --item A=2 --item B=1 --idempotency-key cart-8812 --metadata '{"cart":"8812"}'
  holdfast hold --item A=5 --partial --cart c-8812
  holdfast hold --item A=3 --location eu-berlin --location eu-paris --split
  HOLDFAST_URL=http://127.0.0.1:8081 holdfast hold --sku A --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lines, err := cartLines(skus, qtys, items)
			if err != nil {
				return err
			}
			if split && len(locs) == 0 {
				return errors.New("--split needs --location (the locations a line may be split over)")
			}
			for i := range lines {
				lines[i].Locations, lines[i].Split = locs, split
			}
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			req := client.HoldRequest{Items: lines, TTL: ttl, IdempotencyKey: idemKey, Partial: partial, Cart: cart}
			if meta != "" {
				if !json.Valid([]byte(meta)) {
					return fmt.Errorf("--metadata must be JSON, e.g. '{\"cart\":\"c-1\"}' or '\"text\"', got %q", meta)
				}
				req.Metadata = json.RawMessage(meta)
			}
			if wait != 0 {
				req.Wait = wait
				h, e, err := c.CreateHoldOrWait(cmd.Context(), req)
				if err != nil {
					return cf.fail(cmd, err)
				}
				if e != nil {
					return cf.printWait(cmd, e)
				}
				return cf.printHold(cmd, h)
			}
			h, err := c.CreateHold(cmd.Context(), req)
			if err != nil {
				return cf.fail(cmd, err)
			}
			return cf.printHold(cmd, h)
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&skus, "sku", nil, "SKU to hold (repeat for a cart)")
	fs.UintSliceVar(&qtys, "qty", nil, "units of the matching --sku (repeat; default 1 each)")
	fs.StringArrayVar(&items, "item", nil, "cart line as SKU=QTY (repeat)")
	fs.DurationVar(&ttl, "ttl", 0, "hold lifetime, e.g. 10m (0: the region's default)")
	fs.StringVar(&idemKey, "idempotency-key", "", "make retries return the original hold (printable ASCII, ≤ 128 bytes)")
	fs.StringVar(&meta, "metadata", "", "client metadata kept with the hold: any JSON value, ≤ 1 KiB")
	fs.DurationVar(&wait, "wait", 0, "when sold out, join the waitlist for up to this long (e.g. 2m) instead of failing")
	fs.BoolVar(&partial, "partial", false, "grant what the region can give each line instead of all or nothing")
	fs.StringVar(&cart, "cart", "", "cart reference stored on the hold (printable ASCII, ≤ 128 bytes)")
	fs.StringArrayVar(&locs, "location", nil, "location every line may ship from (repeat, in preference order; default: the region's fulfilment order)")
	fs.BoolVar(&split, "split", false, "let a line be split over several of its --location")
	cf.add(cmd)
	return cmd
}

// cartLines builds the cart from --sku/--qty pairs and --item SKU=QTY.
func cartLines(skus []string, qtys []uint, items []string) ([]api.Item, error) {
	var lines []api.Item
	switch {
	case len(qtys) == 0:
		for _, s := range skus {
			lines = append(lines, api.Item{SKU: s, Qty: 1})
		}
	case len(qtys) == len(skus):
		for i, s := range skus {
			lines = append(lines, api.Item{SKU: s, Qty: uint64(qtys[i])})
		}
	default:
		return nil, fmt.Errorf("%d --sku but %d --qty: give one --qty per --sku, or none (1 each)", len(skus), len(qtys))
	}
	for _, it := range items {
		sku, q, ok := strings.Cut(it, "=")
		if !ok || sku == "" {
			return nil, fmt.Errorf("--item %q: want SKU=QTY", it)
		}
		n, err := strconv.ParseUint(q, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("--item %q: quantity: %w", it, err)
		}
		lines = append(lines, api.Item{SKU: sku, Qty: n})
	}
	if len(lines) == 0 {
		return nil, errors.New("nothing to hold: give --sku (with --qty) or --item SKU=QTY")
	}
	return lines, nil
}

// holdOpCmd builds get, confirm and release, which differ only in the call.
func holdOpCmd(use, short, long, example string, call func(*client.Client, context.Context, string) (*client.Hold, error)) *cobra.Command {
	return idOpCmd(use+" HOLD_ID", short, long, example, call, (*clientFlags).printHold)
}

// idOpCmd is a client command on one object named by its id (a hold, a
// waitlist entry): call it, print the result, or fail with the API's error.
func idOpCmd[T any](use, short, long, example string, call func(*client.Client, context.Context, string) (T, error), show func(*clientFlags, *cobra.Command, T) error) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Long:    long,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			v, err := call(c, cmd.Context(), args[0])
			if err != nil {
				return cf.fail(cmd, err)
			}
			return show(&cf, cmd, v)
		},
	}
	cf.add(cmd)
	return cmd
}

const ownerNote = `
Any region accepts the id: a hold owned by another region (the id's prefix)
is forwarded to its owner, and the answer is 503 with Retry-After while the
owner cannot be reached.`

func newGetCmd() *cobra.Command {
	return holdOpCmd("get", "Show a hold", "Get shows a hold's state, lines and deadline. A held hold past its deadline\nshows as expired even before the sweeper has run.\n"+ownerNote,
		`  holdfast get eu-0k3m1q9d2x7c4b8n5v
  holdfast get eu-0k3m1q9d2x7c4b8n5v --json`,
		(*client.Client).GetHold)
}

func newConfirmCmd() *cobra.Command {
	return holdOpCmd("confirm", "Confirm a hold: its units are sold", "Confirm turns a held hold into a sale. Confirming a confirmed hold succeeds\nagain; confirming a released or expired hold is a 409 conflict.\n"+ownerNote,
		`  holdfast confirm eu-0k3m1q9d2x7c4b8n5v
  holdfast confirm "$(holdfast hold --sku A --json | jq -r .id)"`,
		(*client.Client).Confirm)
}

func newReleaseCmd() *cobra.Command {
	return holdOpCmd("release", "Release a hold: its units go back to the region's slice", "Release gives a held hold's units back at once. Releasing a released or\nexpired hold succeeds (the units are back either way); releasing a confirmed\nhold is a 409 conflict.\n"+ownerNote,
		`  holdfast release eu-0k3m1q9d2x7c4b8n5v`,
		(*client.Client).Release)
}

func newExtendCmd() *cobra.Command {
	var (
		cf  clientFlags
		ttl time.Duration
	)
	cmd := &cobra.Command{
		Use:   "extend HOLD_ID --ttl DURATION",
		Short: "Push a hold's deadline to now + ttl (a heartbeat from a live client)",
		Long: `Extend moves a held hold's deadline to now + --ttl, never past its maximum
lifetime (1h after creation by default) and never backwards. Extending an
expired, released or confirmed hold is a 409 conflict.` + "\n" + ownerNote,
		Example: `  holdfast extend eu-0k3m1q9d2x7c4b8n5v --ttl 5m`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl <= 0 {
				return errors.New("--ttl is required and must be positive, e.g. --ttl 5m")
			}
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			h, err := c.Extend(cmd.Context(), args[0], ttl)
			if err != nil {
				return cf.fail(cmd, err)
			}
			return cf.printHold(cmd, h)
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "new lifetime from now, e.g. 5m (required)")
	cf.add(cmd)
	return cmd
}

func newStockCmd() *cobra.Command {
	var (
		cf  clientFlags
		loc string
	)
	cmd := &cobra.Command{
		Use:   "stock SKU",
		Short: "Show a region's view of a SKU: its own slice and every region it knows",
		Long: `Stock shows the answering region's available, held and sold units of a SKU,
and its view of every region's row with the row's age. Peer rows are a lower
bound of the truth: a peer may have received or sold more since (see AGE).`,
		Example: `  holdfast stock tshirt-red-m
  holdfast stock A --location eu-berlin
  holdfast stock A --url http://127.0.0.1:8082 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			s, err := c.StockAt(cmd.Context(), args[0], loc)
			if err != nil {
				return cf.fail(cmd, err)
			}
			if cf.json {
				writeRaw(cmd.OutOrStdout(), s.Raw)
				return nil
			}
			printStock(cmd.OutOrStdout(), s)
			return nil
		},
	}
	cmd.Flags().StringVar(&loc, "location", "", "show the SKU's stock at this location only (default: the default location, and every location's in a table)")
	cf.add(cmd)
	cmd.AddCommand(newStockImportCmd())
	return cmd
}

// adminCmd builds restock and write-off.
func adminCmd(use, short, long, example, verb string,
	call func(*client.Client, context.Context, string, string, uint64) (*client.Stock, error),
	callIf func(*client.Client, context.Context, string, string, uint64, string) (*client.Stock, error)) *cobra.Command {
	var (
		cf      clientFlags
		ifMatch string
		loc     string
	)
	cmd := &cobra.Command{
		Use:     use + " SKU QTY",
		Short:   short,
		Long:    long,
		Example: example,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			qty, err := strconv.ParseUint(args[1], 10, 64)
			if err != nil || qty == 0 {
				return fmt.Errorf("QTY must be a positive integer, got %q", args[1])
			}
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			var r *client.Stock
			if ifMatch != "" {
				r, err = callIf(c, cmd.Context(), args[0], loc, qty, ifMatch)
			} else {
				r, err = call(c, cmd.Context(), args[0], loc, qty)
			}
			if err != nil {
				return cf.fail(cmd, err)
			}
			if cf.json {
				writeRaw(cmd.OutOrStdout(), r.Raw)
				return nil
			}
			applied := qty
			if r.Applied != nil {
				applied = *r.Applied
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %d of %d units of %s at %s\n", verb, applied, qty, r.SKU, r.Region)
			printStock(cmd.OutOrStdout(), r)
			return nil
		},
	}
	cmd.Flags().StringVar(&ifMatch, "if-match", "", `apply only if the SKU's version is still this ETag (from "holdfast stock SKU"); 412 otherwise`)
	cmd.Flags().StringVar(&loc, "location", "", "the location whose stock changes (default: the SKU's default location)")
	cf.add(cmd)
	return cmd
}

func newRestockCmd() *cobra.Command {
	return adminCmd("restock", "Add units of a SKU to this region's slice (admin)",
		`Restock mints QTY new units of SKU into the answering region's slice (for
example goods received at that region's warehouse). Other regions learn of
them through replication and may borrow them. Needs a token with scope admin
when the region uses tokens.`,
		`  holdfast restock tshirt-red-m 100
  holdfast restock A 5 --url http://127.0.0.1:8081 --token "$ADMIN_TOKEN"`,
		"restocked", (*client.Client).RestockAt, (*client.Client).RestockAtIfMatch)
}

func newWriteOffCmd() *cobra.Command {
	return adminCmd("write-off", "Remove units of a SKU from this region's slice (admin: damage, recount)",
		`Write-off removes up to QTY available units of SKU from the answering region's
slice (damage, theft, a recount down). It never touches held units: when
fewer than QTY are available it removes what is available and says how many.
Needs a token with scope admin when the region uses tokens.`,
		`  holdfast write-off tshirt-red-m 2
  holdfast write-off A 1 --json`,
		"wrote off", (*client.Client).WriteOffAt, (*client.Client).WriteOffAtIfMatch)
}

func (f *clientFlags) printHold(cmd *cobra.Command, h *client.Hold) error {
	w := cmd.OutOrStdout()
	if f.json {
		writeRaw(w, h.Raw)
		return nil
	}
	fmt.Fprintf(w, "%s  %s", h.ID, h.State)
	if h.Replayed {
		fmt.Fprint(w, "  (existing hold: idempotent retry)")
	}
	fmt.Fprintln(w)
	parts := make([]string, 0, len(h.Items))
	for _, it := range h.Items {
		p := fmt.Sprintf("%s×%d", it.SKU, it.Qty)
		if it.Granted != nil {
			p = fmt.Sprintf("%s×%d of %d", it.SKU, *it.Granted, it.Qty)
		}
		if len(it.Allocations) > 0 {
			at := make([]string, len(it.Allocations))
			for i, a := range it.Allocations {
				at[i] = fmt.Sprintf("%d from %s", a.Qty, a.Location)
			}
			p += " (" + strings.Join(at, ", ") + ")"
		}
		parts = append(parts, p)
	}
	fmt.Fprintf(w, "  items:    %s\n", strings.Join(parts, ", "))
	if h.Cart != "" {
		fmt.Fprintf(w, "  cart:     %s\n", h.Cart)
	}
	if !h.ExpiresAt.IsZero() {
		line := h.ExpiresAt.UTC().Format(time.RFC3339)
		if h.State == "held" {
			line += fmt.Sprintf(" (in %v)", time.Until(h.ExpiresAt).Round(time.Second))
		}
		fmt.Fprintf(w, "  expires:  %s\n", line)
	}
	if len(h.Metadata) > 0 {
		fmt.Fprintf(w, "  metadata: %s\n", h.Metadata)
	}
	return nil
}

func printStock(w io.Writer, s *client.Stock) {
	name := s.SKU
	if s.Location != "" {
		name += " (location " + s.Location + ")"
	}
	fmt.Fprintf(w, "%s at %s: available %d, held %d, sold %d (global available ≈ %d)\n",
		name, s.Region, s.Available, s.Held, s.Sold, s.GlobalAvailable)
	printLocations(w, s)
	if len(s.Regions) == 0 {
		return
	}
	names := slices.Sorted(maps.Keys(s.Regions))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tAVAILABLE\tHELD\tSOLD\tAGE")
	for _, r := range names {
		rs := s.Regions[r]
		age := (time.Duration(rs.AgeMs) * time.Millisecond).Round(time.Millisecond).String()
		if r == s.Region {
			age = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", r, rs.Available, rs.Held, rs.Sold, age)
	}
	tw.Flush()
}

// printLocations prints the per-location table of a SKU's view, if any.
func printLocations(w io.Writer, s *client.Stock) {
	if len(s.Locations) == 0 {
		return
	}
	ids := slices.Sorted(maps.Keys(s.Locations))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOCATION\tAVAILABLE\tHELD\tSOLD\tGLOBAL")
	for _, id := range ids {
		l := s.Locations[id]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", id, l.Available, l.Held, l.Sold, l.GlobalAvailable)
	}
	tw.Flush()
}
