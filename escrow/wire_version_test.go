package escrow

import (
	"bytes"
	"errors"
	"testing"
)

// TestWireVersionCompat checks the rolling-upgrade rule: version 1 is
// written exactly as before version 2 existed, version 2 is version 1 plus
// the Speaks byte, this build reads both, and a build pinned to version 1
// refuses version 2 cleanly (ErrWireVersion) rather than misreading it.
func TestWireVersionCompat(t *testing.T) {
	m := Message{Type: MsgDigest, From: "eu", Seq: 7, Digest: []SKUDigest{{SKU: "sku-1", Available: 3, Held: 1, Waiting: 2}},
		Seen: []RegionSeq{{Region: "us", Seq: 4}}}
	v1, err := EncodeMessage(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	if v1[2] != 1 {
		t.Fatalf("a message without Speaks is written as version %d, want 1", v1[2])
	}
	m2 := m
	m2.Speaks = WireVersion
	v2, err := EncodeMessage(nil, &m2)
	if err != nil {
		t.Fatal(err)
	}
	if v2[2] != 2 || v2[4] != WireVersion || !bytes.Equal(v2[5:], v1[4:]) || !bytes.Equal(v2[:2], v1[:2]) || v2[3] != v1[3] {
		t.Fatalf("version 2 is not version 1 plus the Speaks byte:\nv1 %x\nv2 %x", v1, v2)
	}
	for _, b := range [][]byte{v1, v2} {
		got, err := DecodeMessage(b)
		if err != nil {
			t.Fatalf("decode version %d: %v", b[2], err)
		}
		again, err := EncodeMessage(nil, &got)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("version %d does not round-trip: %x vs %x (%v)", b[2], again, b, err)
		}
	}
	if got, _ := DecodeMessage(v2); got.Speaks != WireVersion {
		t.Fatalf("decoded Speaks %d, want %d", got.Speaks, WireVersion)
	}
	if got, err := DecodeMessageUpTo(v1, 1); err != nil || got.Speaks != 0 || got.Seq != 7 {
		t.Fatalf("a version-1 reader cannot read version 1: %+v %v", got, err)
	}
	if _, err := DecodeMessageUpTo(v2, 1); !errors.Is(err, ErrWireVersion) {
		t.Fatalf("a version-1 reader given version 2: %v, want ErrWireVersion", err)
	}
	bad := append([]byte(nil), v2...)
	bad[4] = 1
	if _, err := DecodeMessage(bad); !errors.Is(err, ErrWire) {
		t.Fatalf("version 2 speaking 1: %v, want ErrWire", err)
	}
	old := append([]byte(nil), v1...)
	old[2] = 0
	if _, err := DecodeMessage(old); !errors.Is(err, ErrWireVersion) {
		t.Fatalf("version 0: %v, want ErrWireVersion", err)
	}
	for _, s := range []byte{1, WireVersion + 1} {
		m3 := m
		m3.Speaks = s
		if _, err := EncodeMessage(nil, &m3); err == nil {
			t.Fatalf("encoding a message speaking %d succeeded", s)
		}
	}
	// Storage records keep their own version.
	if r := EncodeRow(nil, &Row{SKU: "sku-1", Region: "eu"}); r[2] != 1 {
		t.Fatalf("row stored as version %d, want 1", r[2])
	}
}
