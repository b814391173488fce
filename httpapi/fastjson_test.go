package httpapi

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/api"
	"github.com/holdfast-io/holdfast/escrow"
)

// TestAppendHoldJSONMatchesEncoder: the hand-written hold JSON is byte for
// byte what json.Encoder writes for holdJSON, for plain and awkward holds.
func TestAppendHoldJSONMatchesEncoder(t *testing.T) {
	base := time.Date(2026, 11, 25, 13, 4, 5, 123456789, time.UTC)
	holds := []escrow.Hold{
		{ID: "eu-01JD5Y7ZK3ABCDEFGH", State: escrow.Held, Lines: []escrow.Line{{SKU: "A", Qty: 1}},
			Created: base, Expires: base.Add(10 * time.Minute), MaxExpires: base.Add(time.Hour), Updated: base},
		{ID: "us-east-01JD5Y7ZK3ABCDEFGH", State: escrow.Confirmed,
			Lines:   []escrow.Line{{SKU: "a<b>&c", Qty: 3}, {SKU: "é\"\\x\u2028", Qty: escrow.MaxQty}},
			Created: base.In(time.FixedZone("x", 3600)), Expires: base.Add(time.Second).Truncate(time.Second),
			MaxExpires: base.Add(time.Millisecond), Updated: time.Unix(0, 0)},
		{ID: "eu-01JD5Y7ZK3ABCDEFGH", State: escrow.Released, Lines: []escrow.Line{{SKU: "sku-0001", Qty: 7}},
			Created: base, Expires: base, MaxExpires: base, Updated: base.Add(time.Nanosecond)},
	}
	for i := range holds {
		h := &holds[i]
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(holdJSON(h)); err != nil {
			t.Fatal(err)
		}
		got, ok := appendHoldJSON(nil, h)
		if !ok {
			t.Fatalf("hold %d: no fast path", i)
		}
		if string(got) != want.String() {
			t.Fatalf("hold %d:\n got %s\nwant %s", i, got, want.String())
		}
	}
	withMeta := holds[0]
	withMeta.Meta = `{"a":1}`
	if _, ok := appendHoldJSON(nil, &withMeta); ok {
		t.Fatal("a hold with metadata must use encoding/json")
	}
}

// TestParseCreateFastAgreesWithEncodingJSON: whatever the fast parser
// accepts, encoding/json (strict, as decodeBody runs it) accepts with the
// same value; and the common bodies do take the fast path.
func TestParseCreateFastAgreesWithEncodingJSON(t *testing.T) {
	bodies := []struct {
		body string
		fast bool // must take the fast path
	}{
		{`{"items":[{"sku":"A","qty":1}],"ttl":"10m0s"}`, true},
		{` { "ttl" : "10m" , "items" : [ { "qty" : 2 , "sku" : "sku-1" } , {"sku":"B","qty":18446744073709551} ] } ` + "\n\t", true},
		{`{"items":[]}`, true},
		{`{"items":[{}]}`, true},
		{`{}`, true},
		{`{"items":[{"sku":"A","qty":0}]}`, true},
		{`{"items":[{"sku":"A","qty":1}],"metadata":{"a":1}}`, false},
		{`{"items":[{"sku":"A","qty":1}],"colour":"red"}`, false},
		{`{"items":[{"sku":"A","qty":1,"x":1}]}`, false},
		{`{"items":[{"sku":"A","qty":1}]} {}`, false},
		{`{"items":[`, false},
		{`{"items":[{"sku":"A","qty":-1}]}`, false},
		{`{"items":[{"sku":"A","qty":1.0}]}`, false},
		{`{"items":[{"sku":"A","qty":1e2}]}`, false},
		{`{"items":[{"sku":"A","qty":01}]}`, false},
		{`{"items":[{"sku":"A","qty":99999999999999999999}]}`, false},
		{`{"items":[{"sku":"A\u0041","qty":1}]}`, false},
		{`{"items":[{"sku":"é","qty":1}]}`, false},
		{`{"items":[{"SKU":"A","qty":1}]}`, false},
		{`{"items":[{"sku":"A","sku":"B","qty":1}]}`, false},
		{`{"items":null}`, false},
		{`{"ttl":60,"items":[]}`, false},
		{`{"items":[{"sku":"A","qty":1},]}`, false},
		{`{"items":[{"sku":"A","qty":1}],}`, false},
		{`[]`, false},
	}
	for _, c := range bodies {
		var fast api.CreateHoldRequest
		ok := parseCreateFast([]byte(c.body), &fast, nil)
		if c.fast && !ok {
			t.Errorf("%s: not parsed by the fast path", c.body)
			continue
		}
		if !ok {
			continue
		}
		var std api.CreateHoldRequest
		dec := json.NewDecoder(bytes.NewReader([]byte(c.body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&std); err != nil {
			t.Errorf("%s: fast path accepted what encoding/json refuses: %v", c.body, err)
			continue
		}
		if _, err := dec.Token(); err == nil {
			t.Errorf("%s: fast path accepted trailing data", c.body)
		}
		fj, _ := json.Marshal(fast)
		sj, _ := json.Marshal(std)
		if !bytes.Equal(fj, sj) {
			t.Errorf("%s: fast %s, encoding/json %s", c.body, fj, sj)
		}
	}
}

// FuzzParseCreateFast: whatever the fast path accepts, encoding/json (as
// decodeBody runs it) accepts too and decodes to the same value. The seeds
// run with go test; go test -fuzz FuzzParseCreateFast ./httpapi explores.
func FuzzParseCreateFast(f *testing.F) {
	for _, s := range []string{
		`{"items":[{"sku":"A","qty":1}],"ttl":"10m0s"}`,
		` { "ttl" : "10m" , "items" : [ { "qty" : 2 , "sku" : "sku-1" } , {"sku":"B","qty":7} ] } `,
		`{"items":[{}]}`, `{}`, `{"items":[{"sku":"A","qty":1},]}`, `{"items":[{"sku":"A","sku":"B"}]}`,
		`{"items":[{"sku":"A","qty":01}]}`, `{"ttl":"1m","ttl":"2m"}`, `{"items":[{"sku":"A\u0041","qty":1}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast api.CreateHoldRequest
		if !parseCreateFast(body, &fast, nil) {
			return
		}
		var std api.CreateHoldRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&std); err != nil {
			t.Fatalf("%q: fast path accepted what encoding/json refuses: %v", body, err)
		}
		if _, err := dec.Token(); err == nil {
			t.Fatalf("%q: fast path accepted trailing data", body)
		}
		if k := duplicateKey(body); k != "" {
			t.Fatalf("%q: fast path accepted a repeated key %q", body, k)
		}
		fj, _ := json.Marshal(fast)
		sj, _ := json.Marshal(std)
		if !bytes.Equal(fj, sj) {
			t.Fatalf("%q: fast %s, encoding/json %s", body, fj, sj)
		}
	})
}

// TestAppendRFC3339NanoUTC: the hand-written UTC format is byte for byte
// AppendFormat's RFC3339Nano over years 0–9999, leap days, the ends of
// days, months and eras, and fractions with and without trailing zeros.
func TestAppendRFC3339NanoUTC(t *testing.T) {
	check := func(tm time.Time) {
		t.Helper()
		want := tm.AppendFormat(nil, time.RFC3339Nano)
		if got := appendRFC3339NanoUTC(nil, tm); string(got) != string(want) {
			t.Fatalf("%v: got %s, want %s", tm.UnixNano(), got, want)
		}
	}
	for _, s := range []string{"0000-01-01T00:00:00Z", "0000-02-29T23:59:59.999999999Z", "0000-03-01T00:00:00Z",
		"1600-02-29T12:00:00.5Z", "1899-12-31T23:59:59Z", "1900-02-28T00:00:00.000000001Z", "1969-12-31T23:59:59.1Z",
		"1970-01-01T00:00:00Z", "2000-02-29T00:00:00.12Z", "2026-12-07T14:48:21.791Z", "2100-03-01T00:00:00Z",
		"9999-12-31T23:59:59.999999999Z"} {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		check(tm.UTC())
	}
	lo := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		ns := int64(rng.IntN(1e9))
		switch rng.IntN(3) {
		case 0:
			ns = 0
		case 1:
			ns -= ns % 1000000 // milliseconds: trailing zeros
		}
		check(time.Unix(lo+rng.Int64N(hi-lo+1), ns).UTC())
	}
	for d := int64(0); d < 3*146097; d++ { // every day of three eras from 1600, at its last second
		check(time.Unix(time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC).Unix()+d*86400+86399, 0).UTC())
	}
}
