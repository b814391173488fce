package region

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

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
