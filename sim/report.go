package sim

import (
	"fmt"
	"html"
	"io"
	"strings"
)

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
	"#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"}

// WriteReport writes a self-contained HTML page (inline SVG and CSS, no
// network) for one seed r of a run with options o, and the summary s of
// the whole sweep. r must come from a run with Options.Series set.
func WriteReport(w io.Writer, o Options, r *Result, s Summary) error {
	o = o.withDefaults()
	var b strings.Builder
	esc := html.EscapeString
	b.WriteString(`<!DOCTYPE html><html><head><meta charset="utf-8"><title>holdfast sim report</title><style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1000px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.ok{color:#1a7f37;font-weight:bold}.bad{color:#c62828;font-weight:bold}
.legend span{display:inline-block;margin-right:1.2em}.sw{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
code{background:#f6f6f6;padding:1px 4px}</style></head><body>`)
	fmt.Fprintf(&b, "<h1>holdfast sim — seed %d</h1>\n", r.Seed)
	fmt.Fprintf(&b, "<p>strategy <b>%s</b>, workload <b>%s</b>, faults <b>%s</b>, %d regions, %d SKUs, %d units per SKU, %v virtual, %g carts/s.</p>\n",
		esc(o.Strategy), esc(o.Workload), esc(o.Faults), o.Regions, o.SKUs, o.Stock, o.Duration, o.Rate)
	fmt.Fprintf(&b, "<p>Replay: <code>holdfast sim %s</code></p>\n", esc(strings.Join(o.Args(r.Seed), " ")))

	// Checkers.
	b.WriteString("<h2>Checkers</h2><table><tr><th class=l>checker</th><th>this seed</th><th>all seeds</th></tr>\n")
	row := func(name string, v, all uint64) {
		cls := "ok"
		if v > 0 {
			cls = "bad"
		}
		fmt.Fprintf(&b, "<tr><td class=l>%s</td><td class=%s>%d</td><td>%d</td></tr>\n", name, cls, v, all)
	}
	row("oversell (units)", r.Oversell, s.Oversell)
	row("acknowledged holds lost", r.LostAcked, s.LostAcked)
	row("conservation errors", r.ConservationErrors, s.ConservationErrors)
	row("unconverged row copies", r.Unconverged, s.Unconverged)
	row("units not returned", r.Unreturned, s.Unreturned)
	row("liveness failures after heal", r.LivenessFailures, s.LivenessFailures)
	if s.waitlisted() {
		row("waitlist violations (FIFO, one terminal state, promotion with its hold, deadlines)", r.WaitViolations, s.WaitViolations)
		row("units kept from connected waiters beyond the bound", r.WaitStranded, s.WaitStranded)
	}
	b.WriteString("</table>\n")
	if len(r.Failures) > 0 {
		b.WriteString("<ul>")
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "<li class=bad>%s</li>", esc(f))
		}
		b.WriteString("</ul>\n")
	}

	// Metrics.
	b.WriteString("<h2>Metrics</h2><table><tr><th class=l>metric</th><th>this seed</th><th>all seeds</th></tr>\n")
	mph := 0.0
	fr := 0.0
	if r.Holds > 0 {
		mph = float64(r.Msgs) / float64(r.Holds)
		fr = float64(r.FalseRejects) / float64(r.Holds)
	}
	m := func(name, v, all string) {
		fmt.Fprintf(&b, "<tr><td class=l>%s</td><td>%s</td><td>%s</td></tr>\n", name, v, all)
	}
	m("carts", fmt.Sprint(r.Holds), fmt.Sprint(s.Holds))
	if s.WipedLost+s.FencedRegions+s.BitflipRefused > 0 {
		// Stores sent back in time (storage_faults_fence.go).
		m("holds lost with a store that went back (wiped_lost)", fmt.Sprint(r.WipedLost), fmt.Sprint(s.WipedLost))
		m("regions fenced at the end", fmt.Sprint(r.FencedRegions), fmt.Sprint(s.FencedRegions))
		m("starts refused for a corrupt store", fmt.Sprint(r.BitflipRefused), fmt.Sprint(s.BitflipRefused))
		m("of flips found late (bitflip_late)", fmt.Sprint(r.BitflipLate), fmt.Sprint(s.BitflipLate))
	}
	m("granted", fmt.Sprint(r.Granted), fmt.Sprint(s.Granted))
	m("rejected", fmt.Sprint(r.Rejected), fmt.Sprint(s.Rejected))
	m("unavailable (no answer)", fmt.Sprint(r.Unavailable), fmt.Sprint(s.Unavailable))
	m("false-rejection rate", fmt.Sprintf("%.4f", fr), fmt.Sprintf("%.4f", s.FalseRejectRate))
	m("stranded at sell-out (mean units left anywhere when a region sells out)", fmt.Sprintf("%.1f", r.StrandedAtSellout), fmt.Sprintf("%.1f", s.StrandedAtSellout))
	m("messages per hold", fmt.Sprintf("%.2f", mph), fmt.Sprintf("%.2f", s.MsgsPerHold))
	m("hold latency p50 (ms)", fmt.Sprintf("%.1f", r.P50HoldMs), fmt.Sprintf("%.1f", s.P50HoldMs))
	m("hold latency p99 (ms)", fmt.Sprintf("%.1f", r.P99HoldMs), fmt.Sprintf("%.1f", s.P99HoldMs))
	m("time to converge after heal (ms)", fmt.Sprint(r.ConvergeMs), fmt.Sprintf("%d (max)", s.MaxConvergeMs))
	m("crashes / partitions", fmt.Sprintf("%d / %d", r.Crashes, r.Partitions), fmt.Sprintf("%d / %d", s.Crashes, s.Partitions))
	m("simulated events", fmt.Sprint(r.Events), fmt.Sprint(s.Events))
	if s.waitlisted() {
		m("waitlist entries joined / promoted", fmt.Sprintf("%d / %d", r.WaitJoined, r.WaitPromoted), fmt.Sprintf("%d / %d", s.WaitJoined, s.WaitPromoted))
		m("waiter wait time p50 (ms)", fmt.Sprintf("%.1f", r.WaitP50Ms), fmt.Sprintf("%.1f", s.WaitP50Ms))
		m("waiter wait time p99 (ms)", fmt.Sprintf("%.1f", r.WaitP99Ms), fmt.Sprintf("%.1f", s.WaitP99Ms))
		m("share of returned units (hot SKU) that reached a waiter", fmt.Sprintf("%.3f", r.ReturnedToWaiters), fmt.Sprintf("%.3f", s.ReturnedToWaiters))
	}
	b.WriteString("</table>\n")

	if r.Series != nil && len(r.Series.Points) > 1 {
		writeCharts(&b, o, r.Series)
	} else {
		b.WriteString("<p>No time series recorded (run with a report to record them).</p>")
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func writeCharts(b *strings.Builder, o Options, se *Series) {
	const W, H, L, T = 960.0, 300.0, 50.0, 10.0
	pw, ph := W-L-10, H-T-30
	tMax := se.Points[len(se.Points)-1].T
	if tMax <= 0 {
		tMax = 1
	}
	x := func(t float64) float64 { return L + pw*t/tMax }
	var aMax int64 = 1
	var hMax uint64 = 1
	for _, p := range se.Points {
		for _, a := range p.Avail {
			aMax = max(aMax, a)
		}
		hMax = max(hMax, p.Granted, p.Rejected)
	}
	shade := func(top, height float64) {
		for _, f := range se.Faults {
			col, op := "#ff9800", 0.18
			switch f.Kind {
			case "crash":
				col, op = "#e53935", 0.25
			case "spike":
				col, op = "#9e9e9e", 0.12
			}
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" opacity="%.2f"><title>%s %.1fs–%.1fs</title></rect>`,
				x(f.From), top, max(1, x(f.To)-x(f.From)), height, col, op, html.EscapeString(f.Desc), f.From, f.To)
		}
		heal := float64(healTime(&o)) / 1e9
		if o.Faults != FaultsNone {
			fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#333" stroke-dasharray="4 3"/><text x="%.1f" y="%.1f" font-size="11">heal</text>`,
				x(heal), x(heal), top, top+height, x(heal)+3, top+11)
		}
	}
	axes := func(top float64, maxV float64, label string) {
		fmt.Fprintf(b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="#999"/>`, L, L+pw, top+ph, top+ph)
		fmt.Fprintf(b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="#999"/>`, L, L, top, top+ph)
		for i := 0; i <= 4; i++ {
			t := tMax * float64(i) / 4
			fmt.Fprintf(b, `<text x="%.1f" y="%.0f" font-size="11" text-anchor="middle">%.0fs</text>`, x(t), top+ph+14, t)
			v := maxV * float64(i) / 4
			fmt.Fprintf(b, `<text x="%.0f" y="%.1f" font-size="11" text-anchor="end">%.0f</text>`, L-4, top+ph-ph*float64(i)/4+4, v)
		}
		fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-size="12" font-weight="bold">%s</text>`, L+4, top+12, label)
	}

	b.WriteString("<h2>Available units per region</h2>\n<div class=legend>")
	for i, name := range se.Regions {
		fmt.Fprintf(b, `<span><i class=sw style="background:%s"></i>%s</span>`, palette[i%len(palette)], html.EscapeString(name))
	}
	b.WriteString(`<span><i class=sw style="background:#ff9800;opacity:.4"></i>partition</span><span><i class=sw style="background:#e53935;opacity:.5"></i>crash</span><span><i class=sw style="background:#9e9e9e;opacity:.4"></i>delay spike</span></div>`)
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f">`, W, H)
	shade(T, ph)
	axes(T, float64(aMax), "")
	for i := range se.Regions {
		var pts []string
		for _, p := range se.Points {
			if p.Avail[i] < 0 { // down: break the line
				if len(pts) > 1 {
					fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, palette[i%len(palette)], strings.Join(pts, " "))
				}
				pts = pts[:0]
				continue
			}
			y := T + ph - ph*float64(p.Avail[i])/float64(aMax)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.T), y))
		}
		if len(pts) > 1 {
			fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, palette[i%len(palette)], strings.Join(pts, " "))
		}
	}
	b.WriteString("</svg>\n")

	b.WriteString("<h2>Holds granted and refused per interval</h2>\n<div class=legend>")
	b.WriteString(`<span><i class=sw style="background:#2e7d32"></i>granted</span><span><i class=sw style="background:#c62828"></i>rejected or unavailable</span></div>`)
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f">`, W, H)
	shade(T, ph)
	axes(T, float64(hMax), "")
	line := func(col string, v func(p Point) uint64) {
		var pts []string
		for _, p := range se.Points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.T), T+ph-ph*float64(v(p))/float64(hMax)))
		}
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, col, strings.Join(pts, " "))
	}
	line("#2e7d32", func(p Point) uint64 { return p.Granted })
	line("#c62828", func(p Point) uint64 { return p.Rejected })
	b.WriteString("</svg>\n")
}
