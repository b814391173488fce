#!/usr/bin/env bash
# compare.sh: the holdfast hold benchmark against PostgreSQL (row lock) and
# Redis (Lua script) on this machine, in one run, timed by the same loadgen
# code, printed as one table. See docs/benchmarks.md.
#
# Usage: bash bench/compare.sh
# Environment (defaults in brackets):
#   DURATION [4s]  WARMUP [1s]     measured window and unmeasured warm-up per cell
#   CONCURRENCY ["1 16 64 256"]    closed-loop clients
#   SKUS ["1 1000"]                1 = one hot SKU
#   SYSTEMS ["holdfast postgres redis"]
#   NONDURABLE_CONCURRENCY ["64"]  concurrencies also run non-durable ("" = none)
#   ENGINE_CONCURRENCY ["256"]     also run holdfast's engine alone (no HTTP) at these ("" = none)
#   MIX [hold]                     hold, or shopper (hold then confirm/release)
#   INSTALL [1]                    apt-get install postgresql / redis-server if absent (as root)
#   RATIO_CONCURRENCY [64]         concurrency of the headline ratios
#   ROUNDS [1]                     run every cell this many times, the systems' order
#                                  reversed on every other round; the table gains a
#                                  round column and a per-cell table of holdfast's ratios
#                                  to each baseline (median of the rounds, min-max)
#   RESULTS [unset]                also append every raw key=value line to this file
#   HOLDFAST_HTTP_SERVER [fasthttp] holdfast's HTTP server: fasthttp, or nethttp (--http-server)
#   HOLDFAST_WAL [own]             holdfast's write-ahead log: own, or pebble (--wal)
#   HOLDFAST_INLINE [1]            0: every caller through the apply loop (--inline-commit=false)
#
# PostgreSQL and Redis run from their Debian packages in a temporary
# directory, listening on 127.0.0.1 only; everything is stopped and removed
# on exit. holdfast runs `holdfast bench` with its in-process region over
# real HTTP on 127.0.0.1.
set -euo pipefail

DURATION=${DURATION:-4s}
WARMUP=${WARMUP:-1s}
CONCURRENCY=${CONCURRENCY:-"1 16 64 256"}
SKUS=${SKUS:-"1 1000"}
SYSTEMS=${SYSTEMS:-"holdfast postgres redis"}
NONDURABLE_CONCURRENCY=${NONDURABLE_CONCURRENCY-"64"}
ENGINE_CONCURRENCY=${ENGINE_CONCURRENCY-"256"}
MIX=${MIX:-hold}
INSTALL=${INSTALL:-1}
HOLDFAST_HTTP_SERVER=${HOLDFAST_HTTP_SERVER:-fasthttp}
HOLDFAST_WAL=${HOLDFAST_WAL:-own}
HOLDFAST_INLINE=${HOLDFAST_INLINE:-1}
ROUNDS=${ROUNDS:-1}
if ! [[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || ((ROUNDS > 20)); then
	echo "compare: ROUNDS must be 1..20, got '$ROUNDS'" >&2
	exit 2
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/holdfast-compare.XXXXXX")
chmod 755 "$WORK"
PG_DATA="$WORK/pg"
PG_BIN=""
REDIS_PID=""
PG_STARTED=0

log() { printf '%s\n' "compare: $*" >&2; }

cleanup() {
	set +e
	if [[ $PG_STARTED == 1 ]]; then
		as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1
	fi
	if [[ -n $REDIS_PID ]]; then
		kill "$REDIS_PID" 2>/dev/null
		wait "$REDIS_PID" 2>/dev/null
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port prints a TCP port on 127.0.0.1 that nothing listens on.
free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 30000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# wait_for CMD...: retry CMD until it succeeds, for at most 30 s.
wait_for() {
	local deadline=$((SECONDS + 30))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS > deadline)); then return 1; fi
		sleep 0.2
	done
}

APT_UPDATED=0
apt_install() {
	if [[ $INSTALL != 1 ]]; then
		log "INSTALL=0: not installing $*"
		return 1
	fi
	if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
		log "cannot install $* (needs root and apt-get)"
		return 1
	fi
	if [[ $APT_UPDATED == 0 ]]; then
		log "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || return 1
		APT_UPDATED=1
	fi
	log "apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# PostgreSQL refuses to run as root: run its tools as the postgres user then.
as_pg() {
	if [[ $(id -u) == 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

find_pg_bin() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [[ -x $d/initdb && -x $d/pg_ctl ]]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

PG_PORT=""
start_postgres() {
	PG_BIN=$(find_pg_bin) || { apt_install postgresql && PG_BIN=$(find_pg_bin); } || {
		log "SKIP postgres: PostgreSQL server binaries not found and not installable"
		return 1
	}
	if [[ $(id -u) == 0 ]] && ! id postgres >/dev/null 2>&1; then
		log "SKIP postgres: running as root and there is no postgres user to run the server as"
		return 1
	fi
	PG_PORT=$(free_port)
	mkdir -p "$PG_DATA" "$WORK/pgrun"
	[[ $(id -u) == 0 ]] && chown postgres "$PG_DATA" "$WORK/pgrun"
	as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U bench --auth=trust --no-locale -E UTF8 >"$WORK/initdb.log" 2>&1 || {
		log "SKIP postgres: initdb failed:"; tail -5 "$WORK/initdb.log" >&2; return 1
	}
	# Durable settings (the defaults, stated): fsync on, synchronous_commit
	# on, full_page_writes on. Enough connections for 256 clients; a buffer
	# cache big enough for the benchmark's tables.
	cat >>"$PG_DATA/postgresql.conf" <<-CONF
	listen_addresses = '127.0.0.1'
	port = $PG_PORT
	unix_socket_directories = '$WORK/pgrun'
	max_connections = 300
	shared_buffers = 256MB
	fsync = on
	synchronous_commit = on
	full_page_writes = on
	logging_collector = off
	CONF
	as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pgrun/server.log" -w -t 60 start >/dev/null || {
		log "SKIP postgres: server did not start:"; tail -5 "$WORK/pgrun/server.log" >&2; return 1
	}
	PG_STARTED=1
	log "postgres $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT"
}

REDIS_PORT=""
start_redis() {
	if ! command -v redis-server >/dev/null; then
		apt_install redis-server || true
	fi
	if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
		log "SKIP redis: redis-server not found and not installable"
		return 1
	fi
	REDIS_PORT=$(free_port)
	mkdir -p "$WORK/redis"
	redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK/redis" \
		--appendonly yes --appendfsync always --save '' --daemonize no \
		--logfile "$WORK/redis.log" &
	REDIS_PID=$!
	if ! wait_for redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping; then
		log "SKIP redis: server did not start:"; tail -5 "$WORK/redis.log" >&2
		return 1
	fi
	log "redis $(redis-server --version | awk '{print $3}' | sed 's/v=//') on 127.0.0.1:$REDIS_PORT (appendonly yes, appendfsync always)"
}

# --- build -------------------------------------------------------------------
log "building holdfast and the baseline client"
(cd "$ROOT" && go build -o "$WORK/holdfast" ./cmd/holdfast)
(cd "$ROOT/bench" && go build -o "$WORK/baseline" ./baseline)

HAVE_PG=0
HAVE_REDIS=0
for s in $SYSTEMS; do
	case $s in
	postgres) start_postgres && HAVE_PG=1 || true ;;
	redis) start_redis && HAVE_REDIS=1 || true ;;
	holdfast) ;;
	*) log "unknown system $s"; exit 2 ;;
	esac
done

# --- runs ----------------------------------------------------------------------
ROWS="$WORK/rows"
: >"$ROWS"
COMMON=(--duration "$DURATION" --warmup "$WARMUP" --mix "$MIX" --quiet)

# run_cell SYSTEM DURABLE(1|0) SKUS CONCURRENCY [ROUND]
run_cell() {
	local sys=$1 durable=$2 skus=$3 conc=$4 round=${5:-1} out rc=0
	local args=("${COMMON[@]}" --skus "$skus" --concurrency "$conc")
	case $sys in
	holdfast | engine)
		[[ $durable == 0 ]] && args+=(--no-sync)
		args+=(--wal "$HOLDFAST_WAL")
		[[ $HOLDFAST_INLINE == 0 ]] && args+=(--inline-commit=false)
		if [[ $sys == engine ]]; then
			args+=(--target engine)
		else
			args+=(--http-server "$HOLDFAST_HTTP_SERVER")
		fi
		out=$("$WORK/holdfast" bench "${args[@]}" 2>"$WORK/err") || rc=$?
		;;
	postgres)
		local dsn="postgres://bench@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
		[[ $durable == 0 ]] && dsn+="&synchronous_commit=off"
		out=$("$WORK/baseline" --system postgres --dsn "$dsn" --server-pid "$(head -n 1 "$PG_DATA/postmaster.pid")" "${args[@]}" 2>"$WORK/err") || rc=$?
		;;
	redis)
		local fs=always
		[[ $durable == 0 ]] && fs=everysec
		redis-cli -h 127.0.0.1 -p "$REDIS_PORT" config set appendfsync "$fs" >/dev/null
		out=$("$WORK/baseline" --system redis --addr "127.0.0.1:$REDIS_PORT" --server-pid "$REDIS_PID" "${args[@]}" 2>"$WORK/err") || rc=$?
		# Keep the AOF from growing through the whole script.
		redis-cli -h 127.0.0.1 -p "$REDIS_PORT" flushall >/dev/null
		redis-cli -h 127.0.0.1 -p "$REDIS_PORT" bgrewriteaof >/dev/null 2>&1 || true
		;;
	esac
	local line
	line=$(printf '%s\n' "$out" | tail -n 1)
	if [[ $rc != 0 || $line != *holds_per_s=* ]]; then
		log "FAILED $sys durable=$durable skus=$skus concurrency=$conc (exit $rc):"
		tail -n 5 "$WORK/err" >&2
		line="target=$sys durable=$durable concurrency=$conc skus=$skus holds_per_s=FAILED"
	fi
	# Trust the settings each system reports, not the ones this script asked for.
	local want=true
	[[ $durable == 0 ]] && want=false
	if [[ $line == *holds_per_s=[0-9]* && $(kv durable "$line") != "$want" ]]; then
		log "FAILED $sys skus=$skus concurrency=$conc: reports durable=$(kv durable "$line"), expected $want"
		line="target=$sys durable=$durable concurrency=$conc skus=$skus holds_per_s=FAILED"
	fi
	[[ -n ${RESULTS:-} ]] && printf '%s\n' "$line" >>"$RESULTS"
	printf '%s|%s|%s|%s|%s|%s\n' "$sys" "$durable" "$skus" "$conc" "$round" "$line" >>"$ROWS"
	log "$sys durable=$durable skus=$skus c=$conc round $round: $(kv holds_per_s "$line") holds/s, p99 $(kv p99_ms "$line") ms"
}

# kv KEY LINE: the value of KEY in a key=value line (or -).
kv() {
	local v
	v=$(printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1)
	printf '%s' "${v:--}"
}

have() {
	case $1 in
	holdfast | engine) return 0 ;;
	postgres) [[ $HAVE_PG == 1 ]] ;;
	redis) [[ $HAVE_REDIS == 1 ]] ;;
	esac
}

# in_order ROUND SYSTEMS...: the systems, reversed on even rounds, so that
# no system always runs first in a cell (the machine drifts between runs).
in_order() {
	local r=$1
	shift
	if ((r % 2 == 0)); then
		printf '%s\n' "$@" | tac | tr '\n' ' '
	else
		printf '%s ' "$@"
	fi
}

start=$SECONDS
for skus in $SKUS; do
	for conc in $CONCURRENCY; do
		for r in $(seq 1 "$ROUNDS"); do
			for sys in $(in_order "$r" $SYSTEMS); do
				have "$sys" || continue
				run_cell "$sys" 1 "$skus" "$conc" "$r"
			done
		done
	done
	for conc in $NONDURABLE_CONCURRENCY; do
		for r in $(seq 1 "$ROUNDS"); do
			for sys in $(in_order "$r" $SYSTEMS); do
				have "$sys" || continue
				run_cell "$sys" 0 "$skus" "$conc" "$r"
			done
		done
	done
	if [[ " $SYSTEMS " == *" holdfast "* ]]; then
		for conc in $ENGINE_CONCURRENCY; do
			for r in $(seq 1 "$ROUNDS"); do
				run_cell engine 1 "$skus" "$conc" "$r"
			done
		done
	fi
done

# --- table ---------------------------------------------------------------------
echo
echo "holdfast vs PostgreSQL vs Redis: hold throughput and latency (mix=$MIX, qty=1, window $DURATION after $WARMUP warm-up)"
echo "machine: $(nproc) cores, $(uname -sr); disk of $WORK: $(df -h "$WORK" | awk 'NR==2{print $1" "$2}')"
echo "durable: holdfast fsync per group commit; postgres synchronous_commit=on; redis appendonly yes + appendfsync always"
echo "NON-DURABLE rows (for the ratio only): holdfast --no-sync; postgres synchronous_commit=off; redis appendfsync everysec"
echo "engine: holdfast's apply loop driven in process (same commands, no HTTP/JSON/sockets): the engine's ceiling, durable"
echo "cpu_us/hold: CPU time of client + server processes over the window per granted hold; cpu_cores: the same per second"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (a busy machine lowers holds/s; cpu_us/hold much less)"
echo
# With ROUNDS > 1 a last column names the round of each row.
rcol() { ((ROUNDS > 1)) && printf ' %5s' "$1"; printf '\n'; }
printf '%-9s %-12s %5s %5s %10s %8s %9s %9s %11s %9s %6s %8s' system durability skus conc holds/s p50_ms p99_ms p999_ms cpu_us/hold cpu_cores errors rejected
rcol round
printf '%-9s %-12s %5s %5s %10s %8s %9s %9s %11s %9s %6s %8s' --------- ------------ ----- ----- ---------- -------- --------- --------- ----------- --------- ------ --------
rcol -----
while IFS='|' read -r sys durable skus conc round line; do
	d=durable
	[[ $durable == 0 ]] && d=NON-DURABLE
	printf '%-9s %-12s %5s %5s %10s %8s %9s %9s %11s %9s %6s %8s' "$sys" "$d" "$skus" "$conc" \
		"$(kv holds_per_s "$line")" "$(kv p50_ms "$line")" "$(kv p99_ms "$line")" "$(kv p999_ms "$line")" \
		"$(kv cpu_us_per_hold "$line")" "$(kv cpu_cores "$line")" "$(kv errors "$line")" "$(kv rejected "$line")"
	rcol "$round"
done < <(sort -t'|' -k3,3n -k2,2r -k4,4n -k1,1 -k5,5n "$ROWS")

# Headline ratios at RATIO_CONCURRENCY clients (64 by default), durable,
# of the cells' medians over the rounds.
RC=${RATIO_CONCURRENCY:-64}
# rate SYSTEM DURABLE SKUS CONC: the cell's holds/s, the median of its rounds.
rate() { awk -F'|' -v s="$1" -v d="$2" -v k="$3" -v c="$4" '$1==s && $2==d && $3==k && $4==c {print $6}' "$ROWS" |
	tr ' ' '\n' | sed -n 's/^holds_per_s=//p' | awk '/^[0-9.]+$/' | sort -n |
	awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (a+0 > 0 && b+0 > 0) printf "%.0f%%", 100*a/b; else printf "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a+0 > 0 && b+0 > 0) printf "%.1fx", a/b; else printf "n/a" }'; }
echo
for k in $SKUS; do
	hf=$(rate holdfast 1 "$k" "$RC")
	hfns=$(rate holdfast 0 "$k" "$RC")
	echo "skus=$k, $RC clients, durable: holdfast/redis $(ratio "$hf" "$(rate redis 1 "$k" "$RC")"), holdfast/postgres $(ratio "$hf" "$(rate postgres 1 "$k" "$RC")"), holdfast durable = $(pct "$hf" "$hfns") of --no-sync"
done

# Per cell, holdfast's durable row against each baseline's of the same
# round (they ran next to each other): holds/s (>= 1 is better), p50, p99
# and CPU per hold (<= 1 is better), the median of the rounds' ratios with
# their range. Rounds where either side failed are left out.
for base in $SYSTEMS; do
	[[ $base == holdfast ]] && continue
	have "$base" || continue
	echo
	echo "holdfast / $base, durable, per cell: median of $ROUNDS round(s) (min-max)"
	awk -F'|' -v base="$base" '
	function kv(line, key,   n, i, a, f) {
		n = split(line, a, " ")
		for (i = 1; i <= n; i++) { split(a[i], f, "="); if (f[1] == key) return f[2] }
		return ""
	}
	function median(list,   n, v, i, j, t) {
		n = split(list, v, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
		lo = v[1]; hi = v[n]
		return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
	}
	function cellfmt(list,   m) {
		m = median(list)
		if (lo == hi) return sprintf("%.2f", m)
		return sprintf("%.2f (%.2f-%.2f)", m, lo, hi)
	}
	$2 == 1 && ($1 == "holdfast" || $1 == base) {
		key = $3 "|" $4 "|" $5
		if ($1 == "holdfast") hf[key] = $6; else bs[key] = $6
		cell = $3 "|" $4
		if (!(cell in seen)) { seen[cell] = 1; order[++ncells] = cell }
	}
	END {
		metric[1] = "holds_per_s"; metric[2] = "p50_ms"; metric[3] = "p99_ms"; metric[4] = "cpu_us_per_hold"
		printf "%5s %5s  %-20s %-20s %-20s %-20s\n", "skus", "conc", "holds/s (>=1)", "p50 (<=1)", "p99 (<=1)", "cpu/hold (<=1)"
		for (c = 1; c <= ncells; c++) {
			split(order[c], kc, "|")
			for (m = 1; m <= 4; m++) list[m] = ""
			for (key in hf) {
				split(key, kk, "|")
				if (kk[1] != kc[1] || kk[2] != kc[2] || !(key in bs)) continue
				ok = 1
				for (m = 1; m <= 4; m++) {
					a[m] = kv(hf[key], metric[m]); b[m] = kv(bs[key], metric[m])
					if (a[m] !~ /^[0-9.]+$/ || b[m] !~ /^[0-9.]+$/ || b[m] + 0 == 0) ok = 0
				}
				if (!ok) continue
				for (m = 1; m <= 4; m++) list[m] = list[m] " " (a[m] / b[m])
			}
			if (list[1] == "") { printf "%5s %5s  n/a\n", kc[1], kc[2]; continue }
			printf "%5s %5s ", kc[1], kc[2]
			for (m = 1; m <= 4; m++) {
				f = cellfmt(list[m]); med = median(list[m])
				printf " %-20s", f
				if ((m == 1 && med >= 1) || (m > 1 && med <= 1)) met[m]++
			}
			printf "\n"; cells++
		}
		printf "cells whose median meets the goal, of %d: holds/s %d, p50 %d, p99 %d, cpu/hold %d\n", cells, met[1], met[2], met[3], met[4]
	}' "$ROWS"
done
log "done in $((SECONDS - start)) s of runs"
