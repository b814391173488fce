package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/holdfast-io/holdfast/loadgen"
)

// pgSystem is the "row lock in PostgreSQL" baseline: stock is one row per
// SKU, and a hold is one transaction that decrements the row only if enough
// units are left and inserts the hold with its expiry. The two statements
// are one CTE, so a hold is one round trip and one commit: the fastest
// shape of this design (no BEGIN/COMMIT round trips), which flatters
// PostgreSQL rather than holdfast.
type pgSystem struct {
	dsn   string
	conns []*pgx.Conn
}

const pgSchema = `
DROP TABLE IF EXISTS holds;
DROP TABLE IF EXISTS stock;
CREATE TABLE stock (sku text PRIMARY KEY, qty bigint NOT NULL CHECK (qty >= 0));
CREATE TABLE holds (
	id         text PRIMARY KEY,
	sku        text NOT NULL,
	qty        bigint NOT NULL,
	state      text NOT NULL,
	expires_at timestamptz NOT NULL
);
-- A sweeper finds expired holds through this index, as holdfast does
-- through its expiry index.
CREATE INDEX holds_expires_at ON holds (expires_at) WHERE state = 'held';`

const (
	pgHold = `WITH s AS (
	UPDATE stock SET qty = qty - $2 WHERE sku = $1 AND qty >= $2 RETURNING sku)
INSERT INTO holds (id, sku, qty, state, expires_at)
SELECT $3, s.sku, $2, 'held', now() + $4 * interval '1 millisecond' FROM s`
	pgConfirm = `UPDATE holds SET state = 'confirmed' WHERE id = $1 AND state = 'held' AND expires_at > now()`
	pgRelease = `WITH h AS (
	UPDATE holds SET state = 'released' WHERE id = $1 AND state = 'held' RETURNING sku, qty)
UPDATE stock SET qty = stock.qty + h.qty FROM h WHERE stock.sku = h.sku`
)

func (p *pgSystem) connect(ctx context.Context) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, p.dsn)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	p.conns = append(p.conns, c)
	return c, nil
}

func (p *pgSystem) Setup(ctx context.Context, wl loadgen.Workload, units uint64) error {
	c, err := p.connect(ctx)
	if err != nil {
		return err
	}
	if _, err := c.Exec(ctx, pgSchema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	rows := make([][]any, wl.SKUs)
	for i := range rows {
		rows[i] = []any{loadgen.SKUName(i), int64(units)}
	}
	if _, err := c.CopyFrom(ctx, pgx.Identifier{"stock"}, []string{"sku", "qty"}, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("load stock: %w", err)
	}
	if _, err := c.Exec(ctx, "VACUUM ANALYZE stock"); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	return nil
}

func (p *pgSystem) Durable(ctx context.Context) (bool, string, error) {
	c, err := p.connect(ctx)
	if err != nil {
		return false, "", err
	}
	var fsync, syncCommit string
	if err := c.QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('synchronous_commit')").Scan(&fsync, &syncCommit); err != nil {
		return false, "", err
	}
	durable := fsync == "on" && syncCommit != "off" // on, local, remote_*: the local WAL flush happens before the ack
	return durable, "fsync=" + fsync + ",synchronous_commit=" + syncCommit, nil
}

func (p *pgSystem) NewOp(ctx context.Context, wl loadgen.Workload, w int) (loadgen.Op, error) {
	c, err := p.connect(ctx)
	if err != nil {
		return nil, err
	}
	pick := wl.Picker(w)
	skus := make([]string, wl.SKUs)
	for i := range skus {
		skus[i] = loadgen.SKUName(i)
	}
	qty := int64(wl.Qty)
	ttlMs := wl.TTL.Milliseconds()
	prefix := "w" + strconv.Itoa(w) + "-"
	var n uint64
	idBuf := make([]byte, 0, 32)
	return func(ctx context.Context) loadgen.Result {
		n++
		idBuf = strconv.AppendUint(append(idBuf[:0], prefix...), n, 10)
		id := string(idBuf)
		sku := skus[pick.SKU()]
		t0 := time.Now()
		tag, err := c.Exec(ctx, pgHold, sku, qty, id, ttlMs)
		lat := time.Since(t0)
		if err != nil {
			return loadgen.Result{Outcome: loadgen.Error, Err: err}
		}
		if tag.RowsAffected() == 0 {
			return loadgen.Result{Outcome: loadgen.Rejected, Latency: lat}
		}
		if wl.Mix != loadgen.MixShopper {
			return loadgen.Result{Outcome: loadgen.OK, Latency: lat}
		}
		q := pgRelease
		if pick.Confirm() {
			q = pgConfirm
		}
		tag, err = c.Exec(ctx, q, id)
		if err != nil {
			return loadgen.Result{Outcome: loadgen.Error, Err: err, Extra: 1}
		}
		if tag.RowsAffected() != 1 {
			return loadgen.Result{Outcome: loadgen.Error, Err: fmt.Errorf("hold %s: confirm/release changed %d rows", id, tag.RowsAffected()), Extra: 1}
		}
		return loadgen.Result{Outcome: loadgen.OK, Latency: lat, Extra: 1}
	}, nil
}

func (p *pgSystem) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, c := range p.conns {
		c.Close(ctx)
	}
}
