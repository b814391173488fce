#!/usr/bin/env bash
# demand.sh — does quota follow demand? Three region processes (eu, us, ap)
# on one embedded NATS, all stock at eu, closed-loop clients holding at us.
# Prints the bench summary of us and how many borrow requests us sent.
#
#   bench/demand.sh                       # default configs (no config file)
#   EXTRA_US="--config my-us.yaml" bench/demand.sh
#   CONCURRENCY=16 DURATION=8s STOCK=10000000 bench/demand.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CONCURRENCY=${CONCURRENCY:-16}
DURATION=${DURATION:-8s}
STOCK=${STOCK:-1000000} # per restock (the API limit); RESTOCKS of them
RESTOCKS=${RESTOCKS:-10}
BASE=${BASE_PORT:-18700}
BIN=${BIN:-$(mktemp -d)/holdfast}
WORK=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
[ -x "$BIN" ] || go build -o "$BIN" ./cmd/holdfast
NATS=nats://127.0.0.1:$BASE
"$BIN" nats --addr 127.0.0.1:$BASE --log-level warn >"$WORK/nats.log" 2>&1 &
pids+=($!)
i=1
for r in eu us ap; do
	extra_var="EXTRA_$(echo $r | tr a-z A-Z)"
	# shellcheck disable=SC2086
	"$BIN" region --name $r --cluster demand --nats-url $NATS --data-dir "$WORK/$r" \
		--http-addr 127.0.0.1:$((BASE + i)) --log-level warn ${!extra_var:-} >"$WORK/$r.log" 2>&1 &
	pids+=($!)
	i=$((i + 1))
done
for p in 1 2 3; do
	for _ in $(seq 100); do curl -sf "http://127.0.0.1:$((BASE + p))/readyz" >/dev/null && break; sleep 0.1; done
done
for _ in $(seq "$RESTOCKS"); do
	curl -sf -X POST -H 'Content-Type: application/json' -d "{\"qty\": $STOCK}" \
		"http://127.0.0.1:$((BASE + 1))/v1/skus/sku-0/restock" >/dev/null
done
# us must know eu's stock before the clients start: wait for its view.
for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$((BASE + 2))/v1/skus/sku-0" | grep -q "\"eu\"" && break
	sleep 0.1
done
"$BIN" bench --url "http://127.0.0.1:$((BASE + 2))" --restock=false --quiet \
	--concurrency "$CONCURRENCY" --duration "$DURATION"
metric() { curl -sf "http://127.0.0.1:$((BASE + 2))/metrics" | awk -v m="$1" '$1==m {print $2}'; }
echo "us borrows_sent=$(metric holdfast_borrows_sent_total)"
