package region

import "testing"

// TestKeyPrefixesDistinct: every key family of the store has its own
// prefix. Two features once picked the same one ("e/" for the event log
// and for the listing index of ended holds), and each then read the
// other's keys as its own.
func TestKeyPrefixesDistinct(t *testing.T) {
	prefixes := map[string]string{
		"meta": pfxMeta, "row": pfxRow, "hold": pfxHold, "expiry": pfxExpiry, "idem": pfxIdem,
		"idem expiry": pfxIdemX, "change": pfxChange, "peer": pfxPeer, "wait": pfxWait,
		"recount": pfxRecount, "events": pfxEvents, "cart": pfxCart, "ended": pfxEnded, "updated": pfxUpdated,
	}
	owner := map[string]string{}
	for name, p := range prefixes {
		if len(p) != 2 || p[1] != '/' {
			t.Errorf("prefix of %s is %q, want one letter and a slash", name, p)
		}
		if other, ok := owner[p]; ok {
			t.Errorf("prefix %q is used by both %s and %s", p, other, name)
		}
		owner[p] = name
	}
}
