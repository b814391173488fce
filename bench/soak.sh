#!/usr/bin/env bash
# soak.sh — holdfast as real processes under faults: three regions, each on
# its own NATS server (servers linked through fault proxies), the
# rebalancer, 8 HTTP shoppers; every PERIOD one region is killed with
# SIGKILL and restarted and one link is cut and healed. At the end it heals
# everything, waits for convergence and checks conservation, no oversell,
# no lost acknowledged hold and one hold per idempotency key; prints RSS and
# file descriptors of every process over time; exits non-zero on FAIL.
#
#   bench/soak.sh                     # 10 minutes
#   DURATION=1m bench/soak.sh         # the CI form
#   DURATION=3m PERIOD=30s SEED=7 bench/soak.sh
#   KEEP=1 bench/soak.sh              # keep the work dir (configs, data, logs)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10m}
PERIOD=${PERIOD:-1m}
SEED=${SEED:-1}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/holdfast-soak.XXXXXX")
pid=""
cleanup() {
	rc=$?
	trap - EXIT INT TERM
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	if [ "$rc" -ne 0 ] && [ -d "$WORK/run/logs" ]; then
		for f in "$WORK"/run/logs/*.log; do
			echo "== tail of $(basename "$f")"; tail -n 20 "$f"
		done
	fi
	if [ -n "${KEEP:-}" ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
	exit "$rc"
}
trap cleanup EXIT INT TERM
go build -o "$WORK/holdfast" ./cmd/holdfast
"$WORK/holdfast" soak --bin "$WORK/holdfast" --dir "$WORK/run" \
	--duration "$DURATION" --period "$PERIOD" --seed "$SEED" &
pid=$!
wait "$pid"
