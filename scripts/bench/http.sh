#!/usr/bin/env bash
# HTTP load benchmark and soak of `avvik serve` (release build) on loopback, with wrk.
#   scripts/bench/http.sh load          # POST /api/v1/deviations, 64 connections, 30 s
#   DURATION=600 scripts/bench/http.sh soak   # mixed load; RSS, disk and latency recorded
# Needs wrk (apt-get install wrk). Prints wrk's report and, for the soak, a summary line.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode="${1:-load}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/avvik-target}"
cargo build --release --locked --quiet
bin="$CARGO_TARGET_DIR/release/avvik"
work="$(mktemp -d)"
port="${PORT:-18080}"
export AVVIK_STORE__DATA_DIR="$work/data" AVVIK_MAIL__OUTBOX_DIR="$work/outbox"
export AVVIK_HTTP__ADDR="127.0.0.1:$port" AVVIK_HTTP__RATE_LIMIT_PER_MINUTE=0
export AVVIK_INTAKE__TOKEN="soak-intake-token" RUST_LOG="${RUST_LOG:-warn}"
echo "ett långt lösenord 123" | "$bin" user add --email ciso@kommunen.example --name CISO --role ciso --password-stdin >/dev/null
token="$("$bin" token create --user ciso@kommunen.example 2>/dev/null | tail -n 1)"
"$bin" serve 2>"$work/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 200); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" && break
  sleep 0.05
done
echo "== $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%FT%TZ)"
case "$mode" in
  load)
    wrk -t2 -c64 -d"${DURATION:-30}"s --latency -s scripts/bench/report.lua "http://127.0.0.1:$port"
    echo "records in the log: $(curl -s "http://127.0.0.1:$port/readyz")"
    ;;
  soak)
    duration="${DURATION:-600}"
    # Seed 500 deviations so classifications and reads have targets.
    wrk -t1 -c8 -d3s -s scripts/bench/report.lua "http://127.0.0.1:$port" >/dev/null
    samples="$work/samples.csv"
    echo "t_s,rss_kib,disk_kib" >"$samples"
    (
      t=0
      while kill -0 "$pid" 2>/dev/null; do
        rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        disk=$(du -sk "$work/data" | cut -f1)
        echo "$t,$rss,$disk" >>"$samples"
        sleep 10
        t=$((t + 10))
      done
    ) &
    sampler=$!
    TOKEN="$token" INTAKE="soak-intake-token" wrk -t2 -c32 -d"${duration}"s --latency -s scripts/bench/mixed.lua "http://127.0.0.1:$port"
    kill "$sampler" 2>/dev/null || true
    echo "== samples (t_s,rss_kib,disk_kib)"
    cat "$samples"
    peak=$(awk -F, 'NR>1 && $2>m {m=$2} END {print m}' "$samples")
    first=$(awk -F, 'NR==2 {print $3}' "$samples"); last=$(tail -n 1 "$samples" | cut -d, -f3)
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    echo "summary: peak sampled RSS ${peak} KiB, VmHWM ${hwm} KiB, disk ${first} -> ${last} KiB"
    curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/audit/verify"; echo
    ;;
  *) echo "usage: $0 load|soak" >&2; exit 2 ;;
esac
