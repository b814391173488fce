package escrow

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Data-driven scenarios in the etcd-raft style: escrow/testdata/*.txt hold
// commands, each followed by "----" and the expected output, then a blank
// line. Run with -escrow.rewrite to regenerate the expected output after a
// deliberate change (and review the diff).
//
//	nodes eu us ap            three regions (digests off)
//	restock eu A 5            admin restock at eu
//	writeoff eu A 5
//	hold us A=1 B=2 [ttl=1m] [key=k] [as=h1]
//	confirm|release|get h1 [at=eu]
//	extend h1 5m
//	deliver                   deliver every message until quiet
//	drop                      lose every message in flight
//	tick 10m                  advance every clock and tick every node
//	view eu A                 eu's view of A: one line per row
//	stats us
var flagRewrite = flag.Bool("escrow.rewrite", false, "rewrite the expected output of escrow/testdata scenarios")

func TestDataDriven(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { runScenario(t, f) })
	}
}

type reqKey struct {
	region string
	id     uint64
}

type scenario struct {
	t     *testing.T
	tw    *tnet
	holds map[string]string // name -> hold id
	reqs  map[reqKey]string // waiting hold request -> name
	next  int
}

func runScenario(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	sc := &scenario{t: t, holds: map[string]string{}, reqs: map[reqKey]string{}}
	var out strings.Builder
	for i := 0; i < len(lines); i++ {
		ln := lines[i]
		if strings.TrimSpace(ln) == "" || strings.HasPrefix(ln, "#") {
			out.WriteString(ln + "\n")
			continue
		}
		cmd := ln
		// Expected output: after "----", up to a blank line.
		if i+1 >= len(lines) || lines[i+1] != "----" {
			t.Fatalf("%s:%d: command without ----", path, i+1)
		}
		j := i + 2
		var want []string
		for ; j < len(lines) && lines[j] != ""; j++ {
			want = append(want, lines[j])
		}
		got := sc.exec(cmd) + sc.answered()
		if !*flagRewrite && strings.Join(want, "\n") != strings.TrimRight(got, "\n") {
			t.Errorf("%s:%d: %s\n got:\n%s\nwant:\n%s", path, i+1, cmd, got, strings.Join(want, "\n"))
		}
		out.WriteString(cmd + "\n----\n" + strings.TrimRight(got, "\n") + "\n")
		i = j - 1
	}
	if *flagRewrite {
		if err := os.WriteFile(path, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (sc *scenario) node(r string) *tnode {
	tn := sc.tw.nodes[r]
	if tn == nil {
		sc.t.Fatalf("no region %q", r)
	}
	return tn
}

func (sc *scenario) exec(line string) string {
	f := strings.Fields(line)
	opts := map[string]string{}
	var args []string
	for _, a := range f[1:] {
		if k, v, ok := strings.Cut(a, "="); ok && (k == "ttl" || k == "key" || k == "as" || k == "at") {
			opts[k] = v
			continue
		}
		args = append(args, a)
	}
	num := func(s string) uint64 {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			sc.t.Fatalf("%q: %v", line, err)
		}
		return v
	}
	dur := func(s string) time.Duration {
		d, err := time.ParseDuration(s)
		if err != nil {
			sc.t.Fatalf("%q: %v", line, err)
		}
		return d
	}
	switch f[0] {
	case "nodes":
		sc.tw = newTNet(sc.t, Config{}, args...)
		return "ok"
	case "restock", "writeoff":
		k := CmdRestock
		if f[0] == "writeoff" {
			k = CmdWriteOff
		}
		r := sc.node(args[0]).do(Command{Kind: k, SKU: args[1], Qty: num(args[2])})
		sc.tw.collect()
		if r.Err != nil {
			return "error " + r.Err.Code.String()
		}
		return fmt.Sprintf("applied %d, available %d", r.Applied, r.Stock.Available)
	case "hold":
		tn := sc.node(args[0])
		c := Command{Kind: CmdHold, IdemKey: opts["key"], IdemHash: 1}
		for _, a := range args[1:] {
			sku, q, _ := strings.Cut(a, "=")
			c.Lines = append(c.Lines, Line{SKU: sku, Qty: num(q)})
		}
		if v, ok := opts["ttl"]; ok {
			c.TTL = dur(v)
		}
		name := opts["as"]
		if name == "" {
			sc.next++
			name = "h" + strconv.Itoa(sc.next)
		}
		tn.req++
		c.ReqID = tn.req
		if err := tn.n.Step(Input{Now: tn.now, Cmd: &c}); err != nil {
			sc.t.Fatal(err)
		}
		tn.drain()
		sc.tw.collect()
		if r, ok := tn.replies[c.ReqID]; ok {
			return sc.holdReply(name, r)
		}
		sc.reqs[reqKey{args[0], c.ReqID}] = name // reported when answered
		return name + ": waiting"
	case "confirm", "release", "get", "extend":
		kinds := map[string]CommandKind{"confirm": CmdConfirm, "release": CmdRelease, "get": CmdGet, "extend": CmdExtend}
		id := sc.holds[args[0]]
		if id == "" {
			id = args[0]
		}
		owner, _ := OwnerOf(id)
		at := opts["at"]
		if at == "" {
			at = owner
		}
		c := Command{Kind: kinds[f[0]], HoldID: id}
		if f[0] == "extend" {
			c.TTL = dur(args[1])
		}
		r := sc.node(at).do(c)
		sc.tw.collect()
		return sc.holdReply(args[0], r)
	case "deliver":
		sc.tw.collect()
		n := 0
		for len(sc.tw.queue) > 0 {
			sc.tw.deliver(0)
			n++
		}
		return fmt.Sprintf("%d messages", n)
	case "drop":
		sc.tw.collect()
		n := len(sc.tw.queue)
		sc.tw.queue = nil
		return fmt.Sprintf("dropped %d", n)
	case "tick":
		d := dur(args[0])
		for _, r := range sortedKeys(sc.tw.nodes) {
			tn := sc.tw.nodes[r]
			tn.now = tn.now.Add(d)
			if err := tn.n.Step(Input{Now: tn.now}); err != nil {
				sc.t.Fatal(err)
			}
			tn.drain()
		}
		sc.tw.collect()
		return "ok"
	case "view":
		v := sc.node(args[0]).n.View(args[1])
		var b strings.Builder
		regions := make([]string, 0, len(v))
		for r := range v {
			regions = append(regions, r)
		}
		sort.Strings(regions)
		for _, r := range regions {
			row := v[r]
			fmt.Fprintf(&b, "%s: seq=%d minted=%d reserved=%d released=%d sold=%d shrunk=%d sent=%v available=%d\n",
				r, row.Seq, row.Minted, row.Reserved, row.Released, row.Sold, row.Shrunk, row.Sent, v.Available(r))
		}
		if err := v.CheckConservation(); err != nil {
			fmt.Fprintf(&b, "conservation: %v\n", err)
		}
		return b.String()
	case "stats":
		s := sc.node(args[0]).n.Stats()
		return fmt.Sprintf("granted=%d rejected=%d borrows=%d answered=%d timeouts=%d donated=%d expired=%d gaps=%d repairs=%d",
			s.Granted, s.Rejected, s.BorrowsSent, s.BorrowsAnswered, s.BorrowTimeouts, s.DonatedUnits, s.ExpiredHolds, s.Gaps, s.RepairsSent)
	}
	sc.t.Fatalf("unknown command %q", line)
	return ""
}

// answered reports waiting holds answered by the last command (a restock
// or a release can grant a hold that waited for units).
func (sc *scenario) answered() string {
	if sc.tw == nil {
		return ""
	}
	var b strings.Builder
	for _, r := range sortedKeys(sc.tw.nodes) {
		tn := sc.tw.nodes[r]
		ids := make([]uint64, 0)
		for k := range sc.reqs {
			if _, ok := tn.replies[k.id]; ok && k.region == r {
				ids = append(ids, k.id)
			}
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, id := range ids {
			k := reqKey{r, id}
			fmt.Fprintf(&b, "\n%s: %s", r, sc.holdReply(sc.reqs[k], tn.replies[id]))
			delete(sc.reqs, k)
		}
	}
	return b.String()
}

func (sc *scenario) holdReply(name string, r Reply) string {
	if r.Err != nil {
		s := name + ": error " + r.Err.Code.String()
		if r.Err.SKU != "" {
			s += fmt.Sprintf(" sku=%s available=%d", r.Err.SKU, r.Err.Available)
		}
		if r.Err.Owner != "" {
			s += " owner=" + r.Err.Owner
		}
		return s
	}
	h := r.Hold
	if _, ok := sc.holds[name]; !ok {
		sc.holds[name] = h.ID
	}
	var lines []string
	for _, l := range h.Lines {
		lines = append(lines, fmt.Sprintf("%s=%d", l.SKU, l.Qty))
	}
	s := fmt.Sprintf("%s: %s %s expires=+%v", name, h.State, strings.Join(lines, ","), h.Expires.Sub(h.Created))
	if r.Replayed {
		s += " replayed"
	}
	return s
}
