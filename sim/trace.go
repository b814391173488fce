package sim

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/holdfast-io/holdfast/escrow"
)

var kindNames = [...]string{evTick: "tick", evFsync: "fsync-done", evMsg: "msg", evReqArrive: "request",
	evReplyArrive: "fwd-reply", evClientReply: "client-reply", evClientTimeout: "client-timeout",
	evCartArrive: "cart", evThink: "think", evRestock: "restock", evFault: "fault", evPhase: "phase",
	evCrash: "crash", evRestart: "restart", evWaitPoll: "wait-poll", evWaitCheck: "wait-check", evStoreBack: "store-back"}

var phaseNames = [...]string{phHeal: "heal", phConvPoll: "converge-poll", phStop: "stop-arrivals",
	phSettle: "settle", phFinalPoll: "final-poll", phProbePoll: "probe-poll", phFinal: "final", phSample: "sample"}

// RunTrace is Run that also writes one line per event to tr: a readable,
// deterministic trace of the seed (large: about 60 bytes per event).
func RunTrace(o Options, tr io.Writer) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	w, err := newWorld(o.withDefaults())
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(tr, 1<<16)
	w.tr = bw
	w.runChecked()
	for _, f := range w.res.Failures {
		fmt.Fprintf(bw, "FAIL %s\n", f)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("sim: trace: %w", err)
	}
	return &w.res, nil
}

func (w *world) traceEvent(e *event) {
	var b strings.Builder
	fmt.Fprintf(&b, "%12.6f %-14s", float64(e.at)/1e9, kindNames[e.kind])
	name := func(i int32) string {
		if int(i) >= 0 && int(i) < len(w.eps) {
			return w.eps[i].name
		}
		return "?"
	}
	switch e.kind {
	case evTick, evFsync, evCrash, evRestart:
		fmt.Fprintf(&b, " %s", name(e.node))
	case evMsg:
		m := e.msg
		fmt.Fprintf(&b, " %s <- %s %s", name(e.node), m.From, m.Type)
		switch m.Type {
		case escrow.MsgRows:
			fmt.Fprintf(&b, " seq=(%d,%d] rows=%d", m.PrevSeq, m.Seq, len(m.Rows))
		case escrow.MsgBorrowReq, escrow.MsgBorrowResp:
			fmt.Fprintf(&b, " id=%d %s qty=%d", m.ID, m.SKU, m.Qty)
		case escrow.MsgRepairReq, escrow.MsgDigest:
			fmt.Fprintf(&b, " seq=%d", m.Seq)
		case escrow.MsgAdvice:
			fmt.Fprintf(&b, " epoch=%d moves=%d", m.Epoch, len(m.Moves))
		}
	case evReqArrive, evReplyArrive, evClientReply:
		r := e.req
		at := e.node
		if e.kind == evClientReply {
			at = int32(r.gateway) // the client's region
		}
		fmt.Fprintf(&b, " %s req=%d %s", name(at), r.cmd.ReqID, r.cmd.Kind)
		if r.cl != nil {
			fmt.Fprintf(&b, " client=%d", r.cl.id)
		}
		if r.cmd.HoldID != "" {
			fmt.Fprintf(&b, " hold=%s", r.cmd.HoldID)
		}
		if e.kind == evClientReply {
			switch {
			case r.reply.Err != nil:
				fmt.Fprintf(&b, " err=%s", r.reply.Err.Code)
			case r.reply.Hold != nil:
				fmt.Fprintf(&b, " -> %s %s", r.reply.Hold.ID, r.reply.Hold.State)
			case r.reply.Wait != nil:
				fmt.Fprintf(&b, " -> wait %s %s", r.reply.Wait.ID, r.reply.Wait.State)
			}
		}
	case evClientTimeout, evThink, evWaitPoll:
		fmt.Fprintf(&b, " client=%d attempt=%d", e.cl.id, e.n)
	case evFault:
		if e.n >= 0 && int(e.n) < len(w.faults) {
			what := "start"
			if e.inc == 1 {
				what = "end"
			}
			fmt.Fprintf(&b, " %s %s", what, w.faults[e.n].desc)
		}
	case evPhase:
		if int(e.n) < len(phaseNames) {
			fmt.Fprintf(&b, " %s", phaseNames[e.n])
		}
	}
	b.WriteByte('\n')
	io.WriteString(w.tr, b.String())
}
