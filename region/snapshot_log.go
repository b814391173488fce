package region

import "github.com/holdfast-io/holdfast/escrow"

// logSnapshots logs the progress of the snapshots in SKU order this region
// receives (escrow/snapshot_sku.go): the start, every
// escrow.SnapshotLogEvery chunks, and the end, with rows, encoded row
// bytes and seconds so far. Called once the batch that carried the parts
// is durable.
func (r *Region) logSnapshots(ps []escrow.SnapshotProgress) {
	for i := range ps {
		p := &ps[i]
		secs := p.Now.Sub(p.Started).Seconds()
		switch p.Phase {
		case escrow.SnapshotStart:
			r.log.Info("snapshot from peer started", "peer", p.Peer, "bound", p.Bound)
		case escrow.SnapshotChunk:
			r.log.Info("snapshot from peer in progress", "peer", p.Peer, "chunks", p.Chunks, "rows", p.Rows,
				"bytes", p.Bytes, "cursor", p.Cursor, "seconds", secs)
		case escrow.SnapshotDone:
			r.log.Info("snapshot from peer done", "peer", p.Peer, "chunks", p.Chunks, "rows", p.Rows,
				"bytes", p.Bytes, "seconds", secs, "seen", p.Bound)
		}
	}
}
