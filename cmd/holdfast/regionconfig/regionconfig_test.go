package regionconfig

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/region"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "eu.yaml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("name: eu\ndata_dir: /tmp/x\nhttp_addr: 127.0.0.1:9000\ntick_interval: 20ms\nescrow:\n  low_water: 5\n  borrow_timeout: 80ms\n  peers: [us, ap]\n")
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "eu" || c.TickInterval != 20*time.Millisecond || c.Escrow.LowWater != 5 ||
		c.Escrow.BorrowTimeout != 80*time.Millisecond || !reflect.DeepEqual(c.Escrow.Peers, []string{"us", "ap"}) {
		t.Fatalf("config: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	write("name: eu\ndata_dir: /tmp/x\nmembers:\n  - {name: eu, public_key: UEU}\n  - {name: us, public_key: UUS}\n" +
		"rebalancer_public_key: UREB\nsigning_key_file: /etc/holdfast/eu.nk\nnats_inbox_prefix: _INBOX.x.eu\n")
	c, err = Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []region.Member{{Name: "eu", PublicKey: "UEU"}, {Name: "us", PublicKey: "UUS"}}; !reflect.DeepEqual(c.Members, want) ||
		c.RebalancerPublicKey != "UREB" || c.SigningKeyFile != "/etc/holdfast/eu.nk" || c.NATSInboxPrefix != "_INBOX.x.eu" {
		t.Fatalf("signing keys: %+v", c)
	}
	write("")
	if c, err := Load(p); err != nil || !reflect.DeepEqual(c, region.Config{}) {
		t.Fatalf("empty file: %+v, %v", c, err)
	}
	write("name: eu\ndata_dri: /tmp/x\n")
	if _, err := Load(p); err == nil {
		t.Fatal("misspelt key accepted")
	}
	// Test-only fault injection and the region name of the core cannot come from a file.
	for _, body := range []string{
		"name: eu\nescrow:\n  bugs:\n    grantwithoutcheck: true\n",
		"name: eu\nescrow:\n  Bugs:\n    GrantWithoutCheck: true\n",
		"name: eu\nescrow:\n  region: us\n",
		"name: eu\nstorage: x\n",
		"name: eu\nlogger: x\n",
	} {
		write(body)
		if c, err := Load(p); err == nil {
			t.Fatalf("config %q accepted: %+v", body, c)
		}
	}
	if err := (region.Config{Name: "EU!", DataDir: "x"}).Validate(); err == nil {
		t.Fatal("bad name accepted")
	}
}

// TestFileCoversConfig: every setting of region.Config and escrow.Config
// that is not code-only has a key of the same field name, so that a new
// setting cannot be forgotten in the file format.
func TestFileCoversConfig(t *testing.T) {
	check := func(file, cfg reflect.Type, codeOnly ...string) {
		t.Helper()
		skip := map[string]bool{}
		for _, n := range codeOnly {
			skip[n] = true
		}
		for i := 0; i < cfg.NumField(); i++ {
			name := cfg.Field(i).Name
			if skip[name] {
				continue
			}
			ff, ok := file.FieldByName(name)
			if !ok {
				t.Errorf("%v.%s has no key in %v", cfg, name, file)
				continue
			}
			if ff.Type != cfg.Field(i).Type && name != "Escrow" && name != "Members" {
				t.Errorf("%v.%s is %v in the file, %v in the config", file, name, ff.Type, cfg.Field(i).Type)
			}
		}
	}
	// Events comes from the flat events_* keys (checked below: filling the
	// file fills it); Disabled and PruneInterval are code-only, and so are
	// the injected clock and the test-only planted bugs.
	check(reflect.TypeOf(File{}), reflect.TypeOf(region.Config{}), "Storage", "FS", "Logger", "Events", "PeerLimits", "Now", "PlantedBugs")
	if ev := (func() region.EventsConfig { var f File; fill(reflect.ValueOf(&f).Elem()); return f.Region().Events })(); !ev.Relayed || ev.Stream == "" || ev.Retention == 0 || ev.MaxBytes == 0 {
		t.Errorf("the events_* keys do not all reach region.Config.Events: %+v", ev)
	}
	check(reflect.TypeOf(File{}), reflect.TypeOf(region.PeerLimits{})) // top-level keys
	// Locations are top-level keys (one list for the cluster), checked by
	// filling below.
	// Rows and MaxResidentSKUs are set by the region from the top-level
	// sku_cache (the store is the row source), Holds and MaxResidentHolds
	// from hold_cache (the store is the hold source).
	check(reflect.TypeOf(Escrow{}), reflect.TypeOf(escrow.Config{}), "Region", "Rand", "bugs", "Members",
		"Locations", "FulfilmentOrder", "Allocation", "Rows", "MaxResidentSKUs", "Holds", "MaxResidentHolds")

	// Setting every field of the file sets every field of the config: the
	// mapping copies them all.
	var f File
	fill(reflect.ValueOf(&f).Elem())
	c := f.Region()
	for _, v := range []reflect.Value{reflect.ValueOf(c), reflect.ValueOf(c.Escrow), reflect.ValueOf(c.PeerLimits)} {
		for i := 0; i < v.NumField(); i++ {
			switch v.Type().Field(i).Name {
			case "Storage", "FS", "Logger", "Region", "Rand", "bugs", "Members", "Now", "PlantedBugs", "Rows", "MaxResidentSKUs",
				"Holds", "MaxResidentHolds":
				continue
			}
			if v.Field(i).IsZero() {
				t.Errorf("%v.%s is not mapped from the file", v.Type(), v.Type().Field(i).Name)
			}
		}
	}
}

// fill sets every field of a struct to a non-zero value.
func fill(v reflect.Value) {
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Struct:
			fill(f)
		case reflect.String:
			f.SetString("x")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64:
			f.SetInt(1)
		case reflect.Uint64:
			f.SetUint(1)
		case reflect.Float64:
			f.SetFloat(1)
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		}
	}
}

// TestPeerLimitsAndPeersAlias: the transport's peer limits come from
// top-level keys and are validated; escrow.peers is the deprecated alias of
// members (its regions plus this one).
func TestPeerLimitsAndPeersAlias(t *testing.T) {
	f, err := Decode(strings.NewReader("name: eu\ndata_dir: /tmp/x\nrepair_rate: 3.5\nrepair_burst: 7\n" +
		"repair_answer_bytes_per_s: 2097152\nrepair_answer_burst_bytes: 8388608\nforward_window: 45s\n" +
		"escrow:\n  peers: [us, ap, eu]\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Region()
	want := region.PeerLimits{RepairRate: 3.5, RepairBurst: 7, RepairAnswerBytesPerSec: 2 << 20,
		RepairAnswerBurstBytes: 8 << 20, ForwardWindow: 45 * time.Second}
	if c.PeerLimits != want {
		t.Fatalf("peer limits %+v, want %+v", c.PeerLimits, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	e := c.Escrow
	e.Region = c.Name
	if got := e.Membership(); !reflect.DeepEqual(got, []string{"eu", "us", "ap"}) {
		t.Fatalf("membership from the deprecated peers: %v", got)
	}
	for _, body := range []string{
		"repair_rate: -1\n",
		"repair_burst: -2\n",
		"repair_answer_burst_bytes: 1000\n", // below one message
		"forward_window: 11m\n",
		"forward_window: -1s\n",
		"repair_answer_bytes_per_s: 1e13\n",
	} {
		f, err := Decode(strings.NewReader("name: eu\ndata_dir: /tmp/x\n" + body))
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		if err := f.Region().Validate(); err == nil {
			t.Errorf("%q accepted", body)
		}
	}
}
