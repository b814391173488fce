// The receive path: the dispatcher takes messages from the subscriptions,
// handle decodes and validates them (subject rules, membership, replays)
// and delivers them to the inbox.

package gossip

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// dispatcher checks inbound peer messages and delivers them to the inbox.
func (t *Transport) dispatcher() {
	defer t.wg.Done()
	for {
		select {
		case <-t.done:
			return
		case msg := <-t.inCh:
			t.handle(msg.Subject, msg.Data, time.Now())
		}
	}
}

func decodeReason(err error) string {
	switch {
	case errors.Is(err, escrow.ErrWireVersion):
		return "version"
	case strings.Contains(err.Error(), "truncated"), strings.Contains(err.Error(), " left)"):
		// " left)": a length beyond the bytes that remain.
		return "truncated"
	case strings.Contains(err.Error(), "limit"):
		return "oversized"
	}
	return "corrupt"
}

// handle checks one inbound message and delivers it; it reports whether
// the message was delivered (for tests).
func (t *Transport) handle(subject string, data []byte, now time.Time) bool {
	if len(data) > escrow.MaxMessageBytes+MaxEnvelopeOverhead {
		t.m.decodeErrs.WithLabelValues("oversized").Inc()
		t.limit.warn(t.log, "decode-oversized", "dropping oversized message", "subject", subject, "bytes", len(data))
		return false
	}
	s, err := ParseSubject(subject)
	if err != nil || s.Cluster != t.cfg.Cluster {
		t.reject("subject", subject, fmt.Errorf("unexpected subject"))
		return false
	}
	env, err := t.keys.Open(subject, data)
	if err != nil {
		t.reject("signature", subject, err)
		return false
	}
	m, err := escrow.DecodeMessageUpTo(env.Payload, t.ver.self)
	if err != nil {
		reason := decodeReason(err)
		t.m.decodeErrs.WithLabelValues(reason).Inc()
		t.limit.warn(t.log, "decode-"+reason, "dropping undecodable message", "subject", subject, "bytes", len(data), "err", err)
		return false
	}
	if err := t.check(&s, &m); err != nil {
		reason := "subject"
		var re *rejection
		if errors.As(err, &re) {
			reason = re.reason
		}
		t.reject(reason, subject, err)
		return false
	}
	if err := t.keys.speaksFor(&env, m.From, m.Type == escrow.MsgAdvice); err != nil {
		t.reject("signature", subject, err)
		return false
	}
	if !t.ver.observe(&m) {
		// The version-1 twin of a digest this region read as version 2.
		t.m.msgsIn.WithLabelValues("digest_twin").Inc()
		return false
	}
	if m.Type == escrow.MsgRepairReq && !t.lim.allowRepair(m.From, now) {
		t.reject("rate_limit", subject, fmt.Errorf("repair requests from %s over %v a second", m.From, t.cfg.RepairRate))
		return false
	}
	if replayable(&m) && t.replay.seen(subject, data) {
		t.reject("replay", subject, fmt.Errorf("%s message from %s seen before", m.Type, m.From))
		return false
	}
	typ := msgLabel(&m)
	t.m.msgsIn.WithLabelValues(typ).Inc()
	t.m.bytesIn.WithLabelValues(typ).Add(float64(len(data)))
	t.m.msgSize.WithLabelValues("in").Observe(float64(len(data)))
	if m.Type != escrow.MsgAdvice {
		t.m.lag.noteMessage(m.From, now)
	}
	switch m.Type {
	case escrow.MsgDigest:
		t.m.lag.noteDigest(m.From, m.Seq, now)
	case escrow.MsgRows:
		// A chunk of a snapshot in SKU order ends at the snapshot's bound
		// but covers only the SKUs up to its cursor: only the last one
		// (no cursor) says the rows up to the bound are here.
		if !m.More && (m.Qty != escrow.RepairBySKU || m.SKU == "") {
			t.m.lag.noteRows(m.From, m.Seq)
		}
	case escrow.MsgBorrowResp:
		t.m.borrowUnitsIn.Add(float64(m.Qty))
	}
	t.inbox.Deliver(m)
	return true
}

type rejection struct {
	reason string
	err    error
}

func (r *rejection) Error() string { return r.err.Error() }

func rejectf(reason, format string, args ...any) error {
	return &rejection{reason: reason, err: fmt.Errorf(format, args...)}
}

// check enforces the subject rules: the region a subject names is the
// sender and the writer of every row; directed messages are for us.
func (t *Transport) check(s *Subject, m *escrow.Message) error {
	switch s.Kind {
	case KindRows:
		if m.Type != escrow.MsgRows || m.To != "" || m.From != s.Region {
			return rejectf("subject", "%s message from %q to %q on the rows subject of %s", m.Type, m.From, m.To, s.Region)
		}
	case KindDigest:
		if m.Type != escrow.MsgDigest || m.To != "" || m.From != s.Region {
			return rejectf("subject", "%s message from %q on the digest subject of %s", m.Type, m.From, s.Region)
		}
	case KindBorrow:
		switch m.Type {
		case escrow.MsgRows, escrow.MsgRepairReq, escrow.MsgBorrowReq, escrow.MsgBorrowResp:
		default:
			return rejectf("type", "%s message on a directed subject", m.Type)
		}
		if s.Region != t.cfg.Region || m.To != t.cfg.Region || m.From != s.From {
			return rejectf("subject", "%s message from %q to %q on the subject from %s to %s", m.Type, m.From, m.To, s.From, s.Region)
		}
	case KindAdvice:
		if m.Type != escrow.MsgAdvice || m.To != "" {
			return rejectf("type", "%s message on the advice subject", m.Type)
		}
		return nil // advice names rows of nobody; the node applies only moves from itself
	default:
		return rejectf("subject", "%s message on a %s subject", m.Type, s.Kind)
	}
	for i := range m.Rows {
		if m.Rows[i].Region != m.From {
			return rejectf("subject", "%s message from %s carries a row of %s", m.Type, m.From, m.Rows[i].Region)
		}
	}
	if m.From == t.cfg.Region {
		return rejectf("self", "%s message claims to come from this region", m.Type)
	}
	if !t.isMember(m.From) {
		return rejectf("non_member", "%s message from %s, which is not a member of the cluster", m.Type, m.From)
	}
	return nil
}

func (t *Transport) reject(reason, subject string, err error) {
	t.m.rejected.WithLabelValues(reason).Inc()
	t.limit.warn(t.log, "reject-"+reason, "dropping inbound message", "reason", reason, "subject", subject, "err", err)
}
