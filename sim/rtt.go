package sim

import (
	"fmt"
	"strings"
	"time"
)

// An RTT matrix (Options.RTT, `holdfast sim --rtt`) fixes the round-trip
// time of region pairs instead of drawing it from InterMin..InterMax:
//
//	us-eu=80ms,us-ap=220ms,eu-ap=150ms,*=40ms
//
// A side names a region (us_east) or the zone its name starts with (us: every
// us_* region); "*" is every pair no entry names. A pair's one-way latency
// is half its RTT. Pairs no entry and no "*" covers keep the drawn latency.
// Entries are applied in order, later ones winning, so a region entry after
// a zone entry refines it.

type rttEntry struct {
	a, b string
	rtt  time.Duration
}

// MaxRTT bounds one entry of an RTT matrix.
const MaxRTT = 10 * time.Second

func parseRTT(spec string) ([]rttEntry, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	var out []rttEntry
	for _, part := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("sim: rtt entry %q: want a-b=duration or *=duration", part)
		}
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < 0 || d > MaxRTT {
			return nil, fmt.Errorf("sim: rtt entry %q: want a duration between 0 and %v", part, MaxRTT)
		}
		k = strings.TrimSpace(k)
		if k == "*" {
			out = append(out, rttEntry{a: "*", b: "*", rtt: d})
			continue
		}
		a, b, ok := strings.Cut(k, "-")
		if !ok || a == "" || b == "" || a == "*" || b == "*" {
			return nil, fmt.Errorf("sim: rtt entry %q: want two region or zone names joined by -", part)
		}
		if !knownSide(a) || !knownSide(b) {
			return nil, fmt.Errorf("sim: rtt entry %q: unknown region or zone (regions: %s)", part, strings.Join(regionNames, ", "))
		}
		out = append(out, rttEntry{a: a, b: b, rtt: d})
	}
	if len(out) > 256 {
		return nil, fmt.Errorf("sim: rtt matrix has %d entries, at most 256", len(out))
	}
	return out, nil
}

func knownSide(s string) bool {
	for _, r := range regionNames {
		if sideMatches(s, r) {
			return true
		}
	}
	return false
}

func sideMatches(side, region string) bool {
	return side == region || strings.HasPrefix(region, side+"_")
}

// rttOf returns the RTT the matrix gives regions x and y, if any.
func rttOf(m []rttEntry, x, y string) (time.Duration, bool) {
	var d time.Duration
	found := false
	for _, e := range m {
		if e.a == "*" || (sideMatches(e.a, x) && sideMatches(e.b, y)) || (sideMatches(e.a, y) && sideMatches(e.b, x)) {
			d, found = e.rtt, true
		}
	}
	return d, found
}

// maxOneWay is the largest one-way inter-region latency o can produce.
func (o Options) maxOneWay() time.Duration {
	m, _ := parseRTT(o.RTT)
	mx := o.InterMax
	for _, e := range m {
		mx = max(mx, e.rtt/2)
	}
	return mx
}
