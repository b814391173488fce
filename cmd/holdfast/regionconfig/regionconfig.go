// Package regionconfig is the YAML file format of `holdfast region --config`.
// The file format belongs to the command layer: region.Config and
// escrow.Config are plain Go structs that any caller (tests, the simulator,
// the demo) fills in code, and this package maps the file's keys onto them.
// Key names are those documented in docs/operations.md ("Region
// configuration"); a test there keeps the two in step.
package regionconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

// MaxFileBytes bounds a config file: anything larger is not a config.
const MaxFileBytes = 1 << 20

// File is one region's config file. Absent keys stay zero, which the
// region and escrow packages read as "use the default".
type File struct {
	Name       string `yaml:"name"`
	DataDir    string `yaml:"data_dir"`
	HTTPAddr   string `yaml:"http_addr"`
	NATSURL    string `yaml:"nats_url"`
	Cluster    string `yaml:"cluster"`
	TokensFile string `yaml:"tokens_file"`
	NoSync     bool   `yaml:"no_sync"`
	WAL        string `yaml:"wal"` // region.Config.WAL: own (default) or pebble

	QueueLen          int           `yaml:"queue_len"`
	MsgQueueLen       int           `yaml:"msg_queue_len"`
	MaxBatch          int           `yaml:"max_batch"`
	TickInterval      time.Duration `yaml:"tick_interval"`
	MaxLinger         time.Duration `yaml:"max_linger"`
	LoneCommit        bool          `yaml:"lone_commit"`      // region.Config.LoneCommit
	NoInlineCommit    bool          `yaml:"no_inline_commit"` // region.Config.NoInlineCommit
	FreshProbation    time.Duration `yaml:"fresh_probation"`
	FreshProbationMax time.Duration `yaml:"fresh_probation_max"`
	RestartProbation  bool          `yaml:"restart_probation"`
	// SKUCache bounds the SKUs kept in memory (0: all; region.Config.SKUCache).
	SKUCache int `yaml:"sku_cache"`
	// SKUPrefetch reads ahead the rows of SKUs not in memory, in passes
	// ("batch", "stage", "off"; "": batch with sku_cache; region.Config.SKUPrefetch).
	SKUPrefetch string `yaml:"sku_prefetch"`
	// HoldCache bounds the holds and idempotency keys kept in memory
	// (0: all; region.Config.HoldCache).
	HoldCache      int           `yaml:"hold_cache"`
	RequestTimeout time.Duration `yaml:"request_timeout"`
	MaxBodyBytes   int64         `yaml:"max_body_bytes"`
	HTTPServer     string        `yaml:"http_server"`
	ImportMaxBytes int64         `yaml:"import_max_bytes"`
	ImportMaxLines int           `yaml:"import_max_lines"`
	// HoldRetain: how long terminal holds stay listable in the store
	// (default 7 days); escrow.hold_retain is the node's memory window.
	HoldRetain    time.Duration `yaml:"hold_retain"`
	PruneInterval time.Duration `yaml:"prune_interval"`

	EventsRelay     *bool         `yaml:"events_relay"`
	EventsStream    string        `yaml:"events_stream"`
	EventsRetention time.Duration `yaml:"events_retention"`
	EventsMaxBytes  int64         `yaml:"events_max_bytes"`

	Members             []Member `yaml:"members"`
	RebalancerPublicKey string   `yaml:"rebalancer_public_key"`
	SigningKeyFile      string   `yaml:"signing_key_file"`
	NATSInboxPrefix     string   `yaml:"nats_inbox_prefix"`
	WireVersion         int      `yaml:"wire_version"`

	// Locations (stock by location; the same list in every region).
	Locations       []Location `yaml:"locations"`
	FulfilmentOrder []string   `yaml:"fulfilment_order"`
	Allocation      string     `yaml:"allocation"`

	RepairRate              float64       `yaml:"repair_rate"`
	RepairBurst             int           `yaml:"repair_burst"`
	RepairAnswerBytesPerSec float64       `yaml:"repair_answer_bytes_per_s"`
	RepairAnswerBurstBytes  int           `yaml:"repair_answer_burst_bytes"`
	ForwardWindow           time.Duration `yaml:"forward_window"`

	Escrow Escrow `yaml:"escrow"`
}

// Escrow is the `escrow:` section. The core's region name (always the
// region's own name) and its test-only settings have no key.
type Escrow struct {
	DefaultTTL       time.Duration `yaml:"default_ttl"`
	MaxLifetime      time.Duration `yaml:"max_lifetime"`
	IdemTTL          time.Duration `yaml:"idem_ttl"`
	HoldRetain       time.Duration `yaml:"hold_retain"`
	BorrowTimeout    time.Duration `yaml:"borrow_timeout"`
	BorrowTimeoutMax time.Duration `yaml:"borrow_timeout_max"`
	LowWater         uint64        `yaml:"low_water"`
	TopUpHorizon     time.Duration `yaml:"top_up_horizon"`
	DonorFloor       uint64        `yaml:"donor_floor"`
	DigestInterval   time.Duration `yaml:"digest_interval"`
	PeerSilence      time.Duration `yaml:"peer_silence"`
	RecountMaxLag    time.Duration `yaml:"recount_max_lag"`
	RepairTimeout    time.Duration `yaml:"repair_timeout"`
	DemandTau        time.Duration `yaml:"demand_tau"`
	HomeTTL          time.Duration `yaml:"home_ttl"`

	MaxPending       int `yaml:"max_pending"`
	MaxSweepPerTick  int `yaml:"max_sweep_per_tick"`
	MaxTopUpsPerTick int `yaml:"max_top_ups_per_tick"`
	MaxDonations     int `yaml:"max_donations"`
	MaxHolds         int `yaml:"max_holds"`
	MaxRowsPerMsg    int `yaml:"max_rows_per_msg"`
	MaxDigestSKUs    int `yaml:"max_digest_skus"`
	MaxRepairRows    int `yaml:"max_repair_rows"`
	MaxRouted        int `yaml:"max_routed"`
	MaxPeerSKUs      int `yaml:"max_peer_skus"`

	MaxWait          time.Duration `yaml:"max_wait"`
	MaxWaitersPerSKU int           `yaml:"max_waiters_per_sku"`
	MaxWaiters       int           `yaml:"max_waiters"`

	Peers []string `yaml:"peers"`
}

// Load reads a config file. Unknown keys are an error, so that a misspelt
// option does not silently keep its default.
func Load(path string) (region.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return region.Config{}, fmt.Errorf("read region config: %w", err)
	}
	if len(b) > MaxFileBytes {
		return region.Config{}, fmt.Errorf("region config %s is larger than 1 MiB", path)
	}
	f, err := Decode(bytes.NewReader(b))
	if err != nil {
		return region.Config{}, fmt.Errorf("region config %s: %w", path, err)
	}
	return f.Region(), nil
}

// Decode reads one YAML document strictly (unknown keys are an error). An
// empty document is a zero File.
func Decode(r io.Reader) (File, error) {
	var f File
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return File{}, fmt.Errorf("decode: %w", err)
	}
	return f, nil
}

// Region maps the file onto region.Config; fields a file cannot set
// (Storage, FS, Logger) stay zero.
func (f File) Region() region.Config {
	return region.Config{
		Name:                f.Name,
		DataDir:             f.DataDir,
		HTTPAddr:            f.HTTPAddr,
		NATSURL:             f.NATSURL,
		Cluster:             f.Cluster,
		TokensFile:          f.TokensFile,
		NoSync:              f.NoSync,
		WAL:                 f.WAL,
		QueueLen:            f.QueueLen,
		MsgQueueLen:         f.MsgQueueLen,
		MaxBatch:            f.MaxBatch,
		TickInterval:        f.TickInterval,
		MaxLinger:           f.MaxLinger,
		LoneCommit:          f.LoneCommit,
		NoInlineCommit:      f.NoInlineCommit,
		FreshProbation:      f.FreshProbation,
		FreshProbationMax:   f.FreshProbationMax,
		RestartProbation:    f.RestartProbation,
		SKUCache:            f.SKUCache,
		SKUPrefetch:         f.SKUPrefetch,
		HoldCache:           f.HoldCache,
		RequestTimeout:      f.RequestTimeout,
		MaxBodyBytes:        f.MaxBodyBytes,
		HTTPServer:          f.HTTPServer,
		ImportMaxBytes:      f.ImportMaxBytes,
		ImportMaxLines:      f.ImportMaxLines,
		Members:             f.members(),
		RebalancerPublicKey: f.RebalancerPublicKey,
		SigningKeyFile:      f.SigningKeyFile,
		NATSInboxPrefix:     f.NATSInboxPrefix,
		WireVersion:         f.WireVersion,
		PeerLimits: region.PeerLimits{
			RepairRate:              f.RepairRate,
			RepairBurst:             f.RepairBurst,
			RepairAnswerBytesPerSec: f.RepairAnswerBytesPerSec,
			RepairAnswerBurstBytes:  f.RepairAnswerBurstBytes,
			ForwardWindow:           f.ForwardWindow,
		},
		Escrow: f.escrow(),
		Events: region.EventsConfig{
			// The relay runs wherever the region has NATS, unless turned off.
			Relayed:   f.NATSURL != "" && (f.EventsRelay == nil || *f.EventsRelay),
			Stream:    f.EventsStream,
			Retention: f.EventsRetention,
			MaxBytes:  f.EventsMaxBytes,
		},
		HoldRetain:    f.HoldRetain,
		PruneInterval: f.PruneInterval,
	}
}

// Location is one entry of `locations:`: a warehouse or store, the region
// that owns it and the regions that may sell from it (default: the owner).
type Location struct {
	ID      string   `yaml:"id"`
	Owner   string   `yaml:"owner"`
	Sellers []string `yaml:"sellers"`
}

// escrow is the escrow section with the file's locations.
func (f File) escrow() escrow.Config {
	c := f.Escrow.Config()
	for _, l := range f.Locations {
		c.Locations = append(c.Locations, escrow.Location{ID: l.ID, Owner: l.Owner, Sellers: l.Sellers})
	}
	c.FulfilmentOrder = f.FulfilmentOrder
	c.Allocation = f.Allocation
	return c
}

// Member is one entry of `members:`, a region of the cluster.
type Member struct {
	Name      string `yaml:"name"`
	PublicKey string `yaml:"public_key"`
}

func (f File) members() []region.Member {
	var ms []region.Member
	for _, m := range f.Members {
		ms = append(ms, region.Member{Name: m.Name, PublicKey: m.PublicKey})
	}
	return ms
}

// Config maps the section onto escrow.Config; Region is filled in by the
// region from its own name.
func (e Escrow) Config() escrow.Config {
	return escrow.Config{
		DefaultTTL:       e.DefaultTTL,
		MaxLifetime:      e.MaxLifetime,
		IdemTTL:          e.IdemTTL,
		HoldRetain:       e.HoldRetain,
		BorrowTimeout:    e.BorrowTimeout,
		BorrowTimeoutMax: e.BorrowTimeoutMax,
		LowWater:         e.LowWater,
		TopUpHorizon:     e.TopUpHorizon,
		DonorFloor:       e.DonorFloor,
		DigestInterval:   e.DigestInterval,
		PeerSilence:      e.PeerSilence,
		RecountMaxLag:    e.RecountMaxLag,
		RepairTimeout:    e.RepairTimeout,
		DemandTau:        e.DemandTau,
		HomeTTL:          e.HomeTTL,
		MaxPending:       e.MaxPending,
		MaxSweepPerTick:  e.MaxSweepPerTick,
		MaxTopUpsPerTick: e.MaxTopUpsPerTick,
		MaxDonations:     e.MaxDonations,
		MaxHolds:         e.MaxHolds,
		MaxRowsPerMsg:    e.MaxRowsPerMsg,
		MaxDigestSKUs:    e.MaxDigestSKUs,
		MaxRepairRows:    e.MaxRepairRows,
		MaxRouted:        e.MaxRouted,
		MaxPeerSKUs:      e.MaxPeerSKUs,
		MaxWait:          e.MaxWait,
		MaxWaitersPerSKU: e.MaxWaitersPerSKU,
		MaxWaiters:       e.MaxWaiters,
		Peers:            e.Peers,
	}
}
