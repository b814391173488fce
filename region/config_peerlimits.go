package region

import (
	"errors"
	"fmt"
	"time"
)

// PeerLimits bounds what a peer may make this region do over NATS; the
// transport (gossip.ConfigFor) enforces them. Zero values take the
// transport's defaults, noted here and in docs/operations.md.
type PeerLimits struct {
	// RepairRate and RepairBurst: repair requests served per peer per
	// second, and in a burst (2, 5); more are dropped and counted.
	RepairRate  float64
	RepairBurst int
	// RepairAnswerBytesPerSec and RepairAnswerBurstBytes: bytes of repair
	// answers sent to one peer per second, and in a burst (4 MiB, 64 MiB;
	// the burst must hold one message, 1 MiB).
	RepairAnswerBytesPerSec float64
	RepairAnswerBurstBytes  int
	// ForwardWindow: a signed forwarded command is accepted only when
	// signed within this of the region's clock, and only once (30s; at
	// most 10m).
	ForwardWindow time.Duration
}

// Limits of PeerLimits' values.
const (
	MaxForwardWindow      = 10 * time.Minute
	minAnswerBurstBytes   = 1 << 20
	maxRepairRate         = 1e6
	maxRepairAnswerPerSec = 1 << 40
)

func (p PeerLimits) validate() error {
	if p.RepairRate < 0 || p.RepairBurst < 0 || p.RepairAnswerBytesPerSec < 0 || p.RepairAnswerBurstBytes < 0 || p.ForwardWindow < 0 {
		return errors.New("region: repair_rate, repair_burst, repair_answer_bytes_per_s, repair_answer_burst_bytes and forward_window must not be negative (0: default)")
	}
	if p.RepairRate > maxRepairRate || p.RepairBurst > maxRepairRate {
		return fmt.Errorf("region: repair_rate and repair_burst are limited to %g", maxRepairRate)
	}
	if p.RepairAnswerBytesPerSec > maxRepairAnswerPerSec || p.RepairAnswerBurstBytes > maxRepairAnswerPerSec {
		return fmt.Errorf("region: repair_answer_bytes_per_s and repair_answer_burst_bytes are limited to %d", int64(maxRepairAnswerPerSec))
	}
	if p.RepairAnswerBurstBytes > 0 && p.RepairAnswerBurstBytes < minAnswerBurstBytes {
		return fmt.Errorf("region: repair_answer_burst_bytes %d is below one message (%d bytes): no repair answer could be sent", p.RepairAnswerBurstBytes, minAnswerBurstBytes)
	}
	if p.ForwardWindow > MaxForwardWindow {
		return fmt.Errorf("region: forward_window %v is over %v: a recorded forwarded command could be played that long after", p.ForwardWindow, MaxForwardWindow)
	}
	return nil
}
