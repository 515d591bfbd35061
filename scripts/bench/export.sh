#!/usr/bin/env bash
# Export memory benchmark: builds stores of 100,000 and N (default 1,000,000) records from
# generated exports, then measures peak RSS of `avvik export` (CLI) and of the server while
# it streams GET /api/v1/audit/events, and checks that avvik and the stand-alone verifier
# agree on the export.   scripts/bench/export.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
big="${1:-1000000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/avvik-target}"
cargo build --release --locked --quiet
bin="$CARGO_TARGET_DIR/release/avvik"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for n in 100000 "$big"; do
  python3 scripts/bench/gen_export.py "$n" >"$work/in-$n.ndjson"
  "$bin" import --data "$work/d$n" "$work/in-$n.ndjson" >/dev/null
  rm "$work/in-$n.ndjson"
  start=$(date +%s%N)
  /usr/bin/time -f %M "$bin" export --data "$work/d$n" 2>"$work/time-$n" >"$work/out-$n.ndjson"
  kib=$(tail -n 1 "$work/time-$n")
  secs=$(( ($(date +%s%N) - start) / 1000000 ))ms
  bytes=$(stat -c %s "$work/out-$n.ndjson")
  echo "export of $n records: ${bytes} bytes in ${secs}, peak RSS ${kib} KiB (avvik export)"
  a=$("$bin" verify --file "$work/out-$n.ndjson")
  p=$(python3 tools/verify_export.py "$work/out-$n.ndjson")
  echo "  avvik verify:       $a"
  echo "  verify_export.py:   $p"
  [ "$a" = "$p" ] && echo "  verifiers agree" || { echo "  VERIFIERS DISAGREE"; exit 1; }
  rm "$work/out-$n.ndjson"
  # The server streaming the same log over HTTP (an auditor's token first, while the
  # store is free).
  port=18181
  echo "ett långt lösenord 123" | "$bin" user add --data "$work/d$n" --email revisor@kommunen.example --name Revisor --role auditor --password-stdin >/dev/null
  token=$("$bin" token create --data "$work/d$n" --user revisor@kommunen.example 2>/dev/null | tail -n 1)
  AVVIK_STORE__DATA_DIR="$work/d$n" AVVIK_HTTP__ADDR="127.0.0.1:$port" RUST_LOG=warn "$bin" serve 2>/dev/null &
  pid=$!
  for _ in $(seq 1 600); do curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" && break; sleep 0.1; done
  before=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/audit/events" | wc -c >"$work/http-bytes"
  after=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  echo "  server streaming it over HTTP: $(cat "$work/http-bytes") bytes; RSS before ${before} KiB, peak (VmHWM) after ${after} KiB"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
