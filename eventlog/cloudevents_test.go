package eventlog

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/holdfast-io/holdfast/escrow"
)

func TestEncodeEveryKind(t *testing.T) {
	evs := nodeEvents(t)
	seen := map[escrow.EventKind]bool{}
	for i := range evs {
		e := &evs[i]
		seen[e.Kind] = true
		b, err := Encode("prod", "eu", uint64(i+1), e)
		if err != nil {
			t.Fatal(err)
		}
		ce, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v\n%s", e.Kind, err, b)
		}
		if ce.ID != EventID("eu", uint64(i+1)) || ce.Source != "holdfast/prod/eu" || ce.Type != "dev.holdfast."+e.Kind.String() ||
			ce.Subject != e.Subject() || !ce.Time.Equal(e.At) || ce.DataContentType != "application/json" || ce.Kind() != e.Kind {
			t.Fatalf("%s: decoded %+v", e.Kind, ce)
		}
		if e.Kind.IsWait() {
			w, err := ce.Waitlist()
			if err != nil {
				t.Fatal(err)
			}
			if w.ID != e.Wait.ID || w.State != e.Wait.State.String() || w.Region != "eu" || len(w.Items) != len(e.Wait.Lines) ||
				w.HoldID != e.Wait.HoldID || ce.DataSchema != WaitlistSchema || (e.Kind == escrow.EvWaitPromoted && w.HoldID == "") {
				t.Fatalf("%s: waitlist data %+v", e.Kind, w)
			}
			if _, err := ce.Stock(); err == nil {
				t.Fatalf("%s decoded as a stock event", e.Kind)
			}
			continue
		}
		if e.Kind.IsHold() {
			h, err := ce.Hold()
			if err != nil {
				t.Fatal(err)
			}
			if h.ID != e.HoldID || h.State != e.Hold.State.String() || h.Region != "eu" || len(h.Items) != len(e.Hold.Lines) ||
				(len(h.Metadata) > 0 && !json.Valid(h.Metadata)) {
				t.Fatalf("%s: hold data %+v", e.Kind, h)
			}
		} else {
			s, err := ce.Stock()
			if err != nil {
				t.Fatal(err)
			}
			if s.SKU != e.SKU || s.Qty != e.Qty || s.Available != e.Available || s.Region != "eu" {
				t.Fatalf("%s: stock data %+v", e.Kind, s)
			}
		}
	}
	for _, k := range escrow.EventKinds() {
		if !seen[k] {
			t.Errorf("no %s event from the node", k)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	evs := nodeEvents(t)
	good, err := Encode("prod", "eu", 7, &evs[0])
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string][2]string{
		"specversion": {`"specversion":"1.0"`, `"specversion":"0.3"`},
		"type":        {`"type":"dev.holdfast.stock.restocked"`, `"type":"dev.holdfast.stock.recounted"`},
		"schema":      {`/v1/stock.json`, `/v2/stock.json`},
		"id":          {`"id":"eu:7"`, `"id":"eu:8"`},
	} {
		bad := strings.Replace(string(good), edit[0], edit[1], 1)
		if bad == string(good) {
			t.Fatalf("%s: edit %q not found in %s", name, edit[0], good)
		}
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("%s: decoded %s", name, bad)
		}
	}
	if _, err := Decode(append(good, '{')); err == nil {
		t.Error("trailing data decoded")
	}
}
