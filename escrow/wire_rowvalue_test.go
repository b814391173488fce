package escrow

import (
	"bytes"
	"errors"
	"testing"
)

// TestRowValueRoundTrip: a row stored in the short form (without the SKU and
// region its key names) decodes to the same row under its key, and a row in
// the long form of earlier stores decodes too, but only under its own key.
func TestRowValueRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		for i := range m.Rows {
			r := m.Rows[i]
			short := EncodeRowValue(nil, &r)
			long := EncodeRow(nil, &r)
			if want := len(long) - 2 - len(r.SKU) - len(r.Region); len(short) != want {
				t.Fatalf("short form of %s/%s is %d bytes, want %d (the long %d without the names)", r.Region, r.SKU, len(short), want, len(long))
			}
			for _, b := range [][]byte{short, long} {
				got, err := DecodeRowValue(b, r.SKU, r.Region)
				if err != nil {
					t.Fatalf("DecodeRowValue(%x, %s, %s): %v", b, r.SKU, r.Region, err)
				}
				if !bytes.Equal(EncodeRow(nil, &got), long) {
					t.Fatalf("row %s/%s decoded as %+v", r.Region, r.SKU, got)
				}
			}
			if _, err := DecodeRowValue(long, r.SKU+"x", r.Region); !errors.Is(err, ErrWire) {
				t.Fatalf("long form of %s/%s under SKU %sx: %v, want ErrWire", r.Region, r.SKU, r.SKU, err)
			}
			if _, err := DecodeRowValue(long, r.SKU, "zz"); !errors.Is(err, ErrWire) {
				t.Fatalf("long form of %s/%s under region zz: %v, want ErrWire", r.Region, r.SKU, err)
			}
		}
	}
	// The names come from the key, and are checked as a decoded row's are.
	b := EncodeRowValue(nil, &Row{SKU: "A", Region: "eu", Seq: 1})
	for _, k := range [][2]string{{"", "eu"}, {"A", ""}, {"A", "not a region"}} {
		if _, err := DecodeRowValue(b, k[0], k[1]); !errors.Is(err, ErrWire) {
			t.Fatalf("short row under key %q/%q: %v, want ErrWire", k[1], k[0], err)
		}
	}
	if r := EncodeRowValue(nil, &Row{SKU: "sku-1", Region: "eu"}); r[2] != 1 || r[3] != kindRowValue {
		t.Fatalf("short row stored as version %d kind %q", r[2], r[3])
	}
}

func FuzzDecodeRowValue(f *testing.F) {
	for _, m := range sampleMessages() {
		for i := range m.Rows {
			b := EncodeRowValue(nil, &m.Rows[i])
			f.Add(b, m.Rows[i].SKU, m.Rows[i].Region)
			f.Add(b[:len(b)-1], m.Rows[i].SKU, m.Rows[i].Region)
			f.Add(EncodeRow(nil, &m.Rows[i]), m.Rows[i].SKU, m.Rows[i].Region)
		}
	}
	f.Add([]byte{'h', 'f', 1, 'r'}, "A", "eu")
	f.Fuzz(func(t *testing.T, b []byte, sku, region string) {
		r, err := DecodeRowValue(b, sku, region)
		if err != nil {
			if !errors.Is(err, ErrWire) && !errors.Is(err, ErrWireVersion) {
				t.Fatalf("error %v wraps neither ErrWire nor ErrWireVersion", err)
			}
			return
		}
		if r.SKU != sku || r.Region != region {
			t.Fatalf("row under %s/%s decoded as the row of %s/%s", region, sku, r.Region, r.SKU)
		}
		out := EncodeRowValue(nil, &r)
		if len(b) >= 4 && b[3] == kindRow {
			out = EncodeRow(nil, &r)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip changed the bytes:\n in %x\nout %x", b, out)
		}
		if r.Held() > r.Reserved {
			t.Fatalf("accepted row with negative held: %+v", r)
		}
	})
}
