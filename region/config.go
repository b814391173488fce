package region

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region/internal/plantedbugs"
)

// Defaults of Config.
const (
	DefaultQueueLen       = 65536
	DefaultMaxBatch       = 8192
	DefaultTickInterval   = 10 * time.Millisecond
	DefaultMaxLinger      = time.Millisecond
	DefaultRequestTimeout = 5 * time.Second
	DefaultMaxBodyBytes   = 64 << 10
	DefaultImportMaxBytes = 64 << 20
	DefaultImportMaxLines = 500_000
	DefaultMsgQueueLen    = 16384
)

// The HTTP servers of Config.HTTPServer.
const (
	HTTPServerNetHTTP  = "nethttp"
	HTTPServerFastHTTP = "fasthttp"
)

// Config configures one region node. The config file format (YAML keys and
// their strict decoding) lives with the command that reads it,
// cmd/holdfast/regionconfig; here it is a plain struct that callers fill.
type Config struct {
	Name       string // region name, [a-z0-9_]{1,32}
	DataDir    string // Pebble directory (ignored when Storage is set)
	HTTPAddr   string // listen address of the HTTP API
	NATSURL    string // empty: no peers (region on its own)
	Cluster    string // NATS subject namespace
	TokensFile string // bearer tokens with scopes; empty: loopback only

	// NoSync skips fsync on commit. Benchmarks only: a crash loses
	// acknowledged holds.
	NoSync bool
	// WAL is the store's write-ahead log: WALOwn ("", the default: the
	// store's own log, pebble's disabled; store_wal.go) or WALPebble.
	WAL string

	QueueLen     int           // client requests waiting for the apply loop
	MsgQueueLen  int           // peer messages waiting for the apply loop
	MaxBatch     int           // inputs stepped into one Ready at most
	TickInterval time.Duration // node clock tick (expiry, borrow deadlines)
	// MaxLinger bounds how long the apply loop waits for the callers of the
	// batch that just committed to come back before it cuts the next one
	// (group commit; see stepLoop). 0: 1ms; negative: never wait.
	MaxLinger time.Duration
	// LoneCommit: with nothing in flight, the stepper writes a lone
	// caller's batch itself, waits for its fsync and answers it, instead of
	// handing it to the committer (see commitLone). Off by default: it
	// showed no measurable gain on the test machine (docs/benchmarks.md).
	LoneCommit bool
	// Inline commit (on unless NoInlineCommit): when the apply loop is
	// idle (the conditions of LoneCommit, before the caller's command is
	// stepped), the caller's own goroutine steps its command, writes the
	// batch, waits for its fsync and answers itself, with no hand-off to
	// the loop (see inline_commit.go). Callers who find the loop busy queue
	// as before. NoInlineCommit sends every caller through the loop.
	NoInlineCommit bool

	// FreshProbation: a region whose store starts empty while it has peers
	// (NATSURL set, or FreshProbation > 0 for an in-process transport)
	// refuses writes until its peers confirm that they never saw its rows,
	// for at least this long (0: 1.5 digest intervals; negative: no
	// probation) and at most FreshProbationMax (0: 30s; negative: no limit).
	// See docs/operations.md, "A wiped or lost region".
	FreshProbation    time.Duration
	FreshProbationMax time.Duration
	// RestartProbation puts a region restarted from a non-empty store on
	// the same probation (escrow's BeginRestartProbation): it refuses
	// writes until every peer it knows has reported not having seen its
	// rows beyond its store's sequence, so that a store restored from an
	// older copy, or one that lost writes its disk said were synced, does
	// not grant before the fence can tell. Costs each restart a probation.
	RestartProbation bool

	// Members lists every region of the cluster, this one included, with
	// the public key each signs its messages with. Peers outside it are not
	// trusted for anything (issue: zero trust between regions). Empty: any
	// well-formed region name is accepted (a quick local setup).
	Members []Member
	// RebalancerPublicKey is the key the rebalancer signs its advice with.
	RebalancerPublicKey string
	// SigningKeyFile is this region's nkeys seed (`holdfast keys`, mode
	// 0600); required when Members lists public keys.
	SigningKeyFile string
	// NATSInboxPrefix is the inbox prefix of this region's NATS requests
	// (empty: _INBOX.<cluster>.<name>); see configs/nats-supercluster.conf.
	NATSInboxPrefix string
	// Peers' demands on this region, enforced by the transport (gossip):
	// see PeerLimits.
	PeerLimits PeerLimits
	// WireVersion caps the peer-message version this region speaks (0: the
	// build's highest; 1: the previous release's format, for a rollback).
	// See docs/operations.md, "Rolling upgrade".
	WireVersion int

	RequestTimeout time.Duration // HTTP request deadline
	MaxBodyBytes   int64         // HTTP request body limit
	// HTTPServer is the HTTP server of the API: HTTPServerFastHTTP (""
	// too, the default: the hold routes served on
	// github.com/valyala/fasthttp) or HTTPServerNetHTTP (Go's net/http);
	// see docs/operations.md, "The HTTP server".
	HTTPServer string
	// ImportMaxBytes and ImportMaxLines bound one bulk import
	// (POST /v1/stock/import; 0: DefaultImportMaxBytes/Lines).
	ImportMaxBytes int64
	ImportMaxLines int

	// SKUCache bounds the SKUs the node keeps in memory (0: every SKU,
	// for the node's life): the store is opened with LazyRows, start-up
	// reads no rows, and the node reads a SKU's rows from Pebble on first
	// touch and drops idle ones past the bound (escrow/skucache.go). Needs
	// the Pebble store (not Config.Storage).
	SKUCache int
	// SKUPrefetch (with SKUCache) reads the rows of the SKUs that commands
	// name and the node does not hold before they are stepped, several
	// SKUs in one pass of one Pebble iterator (region/prefetch_rows.go):
	// SKUPrefetchBatch on the stepper, for what it takes from its queue
	// at once; SKUPrefetchStage on a goroutine between the callers and
	// the stepper; SKUPrefetchOff: each miss reads on its own. "" (the
	// default): SKUPrefetchBatch when SKUCache is set.
	SKUPrefetch string
	// HoldCache bounds the holds and idempotency keys the node keeps in
	// memory (0: every one, as before): the store is opened with
	// LazyHolds, start-up reads no hold nor key (it counts the expiry
	// index), and the node reads a hold or key from Pebble when a command
	// names it, finds expired ones through the store's expiry indexes, and
	// drops saved ones past the bound (escrow/holdcache.go). Needs the
	// Pebble store and a store that keeps terminal holds (HoldRetain not
	// negative): the store's pruner, not the node, deletes them.
	HoldCache int

	// Escrow overrides the core's defaults (LowWater, BorrowTimeout, ...).
	// Escrow.Region is always Name.
	Escrow escrow.Config

	// Events configures the event log (events.go).
	Events EventsConfig
	// HoldRetain is how long terminal holds stay listable (GET /v1/holds)
	// after they ended (0: DefaultHoldRetain, 7 days; negative: only as
	// long as the node keeps them in memory, Escrow.HoldRetain). Past the
	// node's memory window they live in the store only; the pruner drops
	// them every PruneInterval (0: 1 minute). See list.go.
	HoldRetain    time.Duration
	PruneInterval time.Duration

	// Storage, when set, is used instead of opening a Store in DataDir.
	Storage Storage
	// FS is the filesystem of the Store opened in DataDir; nil: the real one.
	// Tests use it for crash and fault injection.
	FS vfs.FS
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock of the node's inputs (hold deadlines, expiry,
	// borrow deadlines); nil: time.Now. The simulator injects virtual time
	// through it (see Stepper).
	Now func() time.Time
	// PlantedBugs is for tests only (set through region/regiontest): the
	// zero value plants none.
	PlantedBugs plantedbugs.Set
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if c.QueueLen <= 0 {
		c.QueueLen = DefaultQueueLen
	}
	if c.MsgQueueLen <= 0 {
		c.MsgQueueLen = DefaultMsgQueueLen
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.MaxLinger == 0 {
		c.MaxLinger = DefaultMaxLinger
	}
	if c.TickInterval <= 0 {
		c.TickInterval = DefaultTickInterval
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.ImportMaxBytes <= 0 {
		c.ImportMaxBytes = DefaultImportMaxBytes
	}
	if c.ImportMaxLines <= 0 {
		c.ImportMaxLines = DefaultImportMaxLines
	}
	if c.Cluster == "" {
		c.Cluster = "holdfast"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c = c.retainDefaults()
	c.Escrow.Region = c.Name
	if len(c.Escrow.Members) == 0 {
		c.Escrow.Members = c.MemberNames()
	}
	return c
}

// Member is one region of the cluster's membership.
type Member struct {
	Name      string
	PublicKey string // nkeys public key of the region's signing key; empty: unsigned cluster
}

// MemberNames returns the names of Members (nil when none is listed).
func (c Config) MemberNames() []string {
	var names []string
	for _, m := range c.Members {
		names = append(names, m.Name)
	}
	return names
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if err := escrow.ValidRegion(c.Name); err != nil {
		return fmt.Errorf("region: name: %w", err)
	}
	if c.Storage == nil && c.DataDir == "" {
		return errors.New("region: data_dir is required")
	}
	if c.QueueLen < 0 || c.MaxBatch < 0 || c.MsgQueueLen < 0 {
		return errors.New("region: queue_len, msg_queue_len and max_batch must not be negative")
	}
	if c.QueueLen > 1<<22 || c.MsgQueueLen > 1<<22 || c.MaxBatch > 1<<20 {
		return errors.New("region: queue_len/msg_queue_len at most 4194304, max_batch at most 1048576")
	}
	if c.TickInterval < 0 || (c.TickInterval > 0 && c.TickInterval > time.Second) {
		return fmt.Errorf("region: tick_interval %v must be at most 1s (expiry runs on ticks)", c.TickInterval)
	}
	if c.RequestTimeout < 0 || c.MaxBodyBytes < 0 {
		return errors.New("region: request_timeout and max_body_bytes must not be negative")
	}
	switch c.HTTPServer {
	case "", HTTPServerNetHTTP, HTTPServerFastHTTP:
	default:
		return fmt.Errorf("region: http_server %q must be %s or %s", c.HTTPServer, HTTPServerNetHTTP, HTTPServerFastHTTP)
	}
	if c.ImportMaxBytes < 0 || c.ImportMaxLines < 0 || c.ImportMaxBytes > 1<<30 || c.ImportMaxLines > 10_000_000 {
		return errors.New("region: import_max_bytes must be 0..1073741824 and import_max_lines 0..10000000")
	}
	if len(c.Cluster) > 64 || strings.ContainsAny(c.Cluster, ".*> \t\r\n") {
		return fmt.Errorf("region: cluster %q must be one NATS subject token of at most 64 bytes", c.Cluster)
	}
	seen := map[string]bool{}
	for _, m := range c.Members {
		if err := escrow.ValidRegion(m.Name); err != nil {
			return fmt.Errorf("region: members: %w", err)
		}
		if seen[m.Name] {
			return fmt.Errorf("region: members: %s is listed twice", m.Name)
		}
		seen[m.Name] = true
	}
	if len(c.Members) > 0 && !seen[c.Name] {
		return fmt.Errorf("region: members does not list this region (%s)", c.Name)
	}
	if err := ValidWAL(c.WAL); err != nil {
		return fmt.Errorf("region: %w", err)
	}
	switch c.SKUPrefetch {
	case "", SKUPrefetchBatch, SKUPrefetchStage, SKUPrefetchOff:
	default:
		return fmt.Errorf("region: sku_prefetch %q must be %q, %q, %q or empty (the default: %q with sku_cache)", c.SKUPrefetch, SKUPrefetchBatch, SKUPrefetchStage, SKUPrefetchOff, SKUPrefetchBatch)
	}
	if c.HoldCache < 0 || c.HoldCache > escrow.MaxResidentHoldsLimit {
		return fmt.Errorf("region: hold_cache %d must be between 0 (off) and %d", c.HoldCache, escrow.MaxResidentHoldsLimit)
	}
	if c.HoldCache > 0 && c.HoldRetain < 0 {
		return fmt.Errorf("region: hold_cache needs hold_retain of 0 or more (the store keeps and prunes terminal holds), got %v", c.HoldRetain)
	}
	if c.SKUCache < 0 || c.SKUCache > escrow.MaxResidentSKUsLimit {
		return fmt.Errorf("region: sku_cache %d must be between 0 (off) and %d", c.SKUCache, escrow.MaxResidentSKUsLimit)
	}
	if err := c.PeerLimits.validate(); err != nil {
		return err
	}
	if err := c.Events.validate(); err != nil {
		return err
	}
	if err := c.validateRetain(); err != nil {
		return err
	}
	e := c.Escrow
	e.Region = c.Name
	if err := e.Validate(); err != nil {
		return fmt.Errorf("region: escrow: %w", err)
	}
	return nil
}
