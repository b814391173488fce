package gossip

import (
	"fmt"
	"strings"

	"github.com/holdfast-io/holdfast/escrow"
)

// SubjectPrefix is the first token of every holdfast subject.
const SubjectPrefix = "holdfast"

// Subject kinds: the third token of a holdfast subject.
const (
	KindRows   = "rows"
	KindDigest = "digest"
	KindBorrow = "borrow"
	KindAdvice = "advice"
	KindHold   = "hold"
)

// MaxClusterLen bounds a cluster name.
const MaxClusterLen = 64

// ValidCluster checks a cluster name: 1–64 bytes of [A-Za-z0-9_-], so that
// it is exactly one NATS subject token.
func ValidCluster(c string) error {
	if c == "" || len(c) > MaxClusterLen {
		return fmt.Errorf("gossip: cluster name %q must be 1 to %d bytes", c, MaxClusterLen)
	}
	for i := 0; i < len(c); i++ {
		ch := c[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_' || ch == '-') {
			return fmt.Errorf("gossip: cluster name %q may contain only A-Z, a-z, 0-9, _ and -", c)
		}
	}
	return nil
}

func subj(cluster string, tokens ...string) string {
	return SubjectPrefix + "." + cluster + "." + strings.Join(tokens, ".")
}

// RowsSubject is where region publishes its row deltas.
func RowsSubject(cluster, region string) string { return subj(cluster, KindRows, region) }

// DigestSubject is where region publishes its digests.
func DigestSubject(cluster, region string) string { return subj(cluster, KindDigest, region) }

// BorrowSubject carries directed messages from region from to region to.
func BorrowSubject(cluster, to, from string) string { return subj(cluster, KindBorrow, to, from) }

// AdviceSubject carries rebalancer advice to every region.
func AdviceSubject(cluster string) string { return subj(cluster, KindAdvice) }

// HoldSubject receives hold operations forwarded to owner (request/reply).
func HoldSubject(cluster, owner string) string { return subj(cluster, KindHold, owner) }

// RowsWildcard and DigestWildcard match every region's
// subject of that kind (the rebalancer subscribes to DigestWildcard).
func RowsWildcard(cluster string) string   { return subj(cluster, KindRows, "*") }
func DigestWildcard(cluster string) string { return subj(cluster, KindDigest, "*") }

// BorrowInbox matches every directed message to region to.
func BorrowInbox(cluster, to string) string { return subj(cluster, KindBorrow, to, "*") }

// SubjectFor returns the subject a message from a region is published on.
func SubjectFor(cluster string, m *escrow.Message) (string, error) {
	switch {
	case m.Type == escrow.MsgAdvice:
		return AdviceSubject(cluster), nil
	case m.To != "":
		switch m.Type {
		case escrow.MsgRows, escrow.MsgRepairReq, escrow.MsgBorrowReq, escrow.MsgBorrowResp:
			return BorrowSubject(cluster, m.To, m.From), nil
		}
	case m.Type == escrow.MsgRows:
		return RowsSubject(cluster, m.From), nil
	case m.Type == escrow.MsgDigest:
		return DigestSubject(cluster, m.From), nil
	}
	return "", fmt.Errorf("gossip: no subject for a %s message from %q to %q", m.Type, m.From, m.To)
}

// Subject is a parsed holdfast subject.
type Subject struct {
	Cluster string
	Kind    string
	Region  string // rows, digest: the sender; borrow: the recipient; hold: the owner
	From    string // borrow: the sender
}

// ParseSubject splits a holdfast subject and checks its shape.
func ParseSubject(s string) (Subject, error) {
	t := strings.Split(s, ".")
	if len(t) < 3 || t[0] != SubjectPrefix {
		return Subject{}, fmt.Errorf("gossip: %q is not a holdfast subject", s)
	}
	p := Subject{Cluster: t[1], Kind: t[2]}
	want := 0
	switch p.Kind {
	case KindRows, KindDigest, KindHold:
		want = 4
	case KindBorrow:
		want = 5
	case KindAdvice:
		want = 3
	default:
		return Subject{}, fmt.Errorf("gossip: subject %q has unknown kind %q", s, p.Kind)
	}
	if len(t) != want {
		return Subject{}, fmt.Errorf("gossip: subject %q has %d tokens, want %d", s, len(t), want)
	}
	if want >= 4 {
		p.Region = t[3]
		if err := escrow.ValidRegion(p.Region); err != nil {
			return Subject{}, fmt.Errorf("gossip: subject %q: %v", s, err)
		}
	}
	if want == 5 {
		p.From = t[4]
		if err := escrow.ValidRegion(p.From); err != nil {
			return Subject{}, fmt.Errorf("gossip: subject %q: %v", s, err)
		}
	}
	return p, nil
}
