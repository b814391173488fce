package region

// Where Pebble cuts sstables: at every key prefix of the layout (keys.go).
//
// Pebble cuts a flush's or a compaction's output at its target file size and
// where the output's overlap with the level below grows too large, wherever
// that falls in the key space. A flush of this store's memtable holds, in key
// order, the new event records (e/s/), the new holds (h/), rows scattered
// over the whole catalogue (r/) and the new expiry keys (x/), so its tables
// straddle prefixes: a table from the last new hold to the first rows
// covers, in the level below, every table of h/ and r/ between them, and one
// from the last rows to the newest expiry key covers every x/ table written
// before. Each L0 → Lbase compaction then rewrites the whole catalogue's
// rows and the old expiry keys again, a cost that grows with the store and
// not with what the holds wrote (docs/benchmarks.md, "Compactions at 1 M
// SKUs").
//
// Cut at every prefix instead, a table holds keys of one prefix only. The
// time-ordered prefixes (e/s/, h/, x/, j/, the listing indexes) get tables
// of new keys that overlap no table below them but the last of their
// prefix, so compactions rewrite the new keys only (or move a lone table
// down without a rewrite), and L0's sublevels build up only where keys are
// rewritten in place (rows, e/head, m/): compactions merge the base
// level's tables of those alone.

import (
	"github.com/cockroachdb/pebble/v2"

	"github.com/holdfast-io/holdfast/eventlog"
)

// pfxEventRecords is the prefix of the outbox's records (e/s/<seq>), a span
// of its own apart from the outbox's counters (e/head, e/relay, e/floor),
// which sort before it and are rewritten by every batch.
var pfxEventRecords = func() string {
	k := eventlog.RecordKey(0)
	return string(k[:len(k)-seqLen])
}()

// prefixSpans is the store's pebble SpanPolicyFunc: the default policy, in
// spans that end at the next prefix (prefixSpanEnd), so that Pebble
// finishes an output table there.
func prefixSpans(startKey []byte) (pebble.SpanPolicy, []byte, error) {
	return pebble.SpanPolicy{}, prefixSpanEnd(startKey), nil
}

// prefixSpanEnd returns the exclusive end of the span of k: the end of its
// prefix ("h/…" → "h0"), with the outbox's records and the keys around them
// in spans of their own; a key outside the layout ends its span at the
// next first byte; nil (no end) after 0xff.
func prefixSpanEnd(k []byte) []byte {
	switch {
	case len(k) == 0:
		return []byte{0}
	case len(k) >= 2 && k[1] == '/':
		if k[0] == pfxEvents[0] {
			switch s := string(k); {
			case s < pfxEventRecords:
				return []byte(pfxEventRecords)
			case s < string(prefixEnd(pfxEventRecords)):
				return prefixEnd(pfxEventRecords)
			}
		}
		return []byte{k[0], '/' + 1}
	case k[0] < 0xff:
		return []byte{k[0] + 1}
	}
	return nil
}
