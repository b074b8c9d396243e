#!/usr/bin/env bash
# The coordinator ingest benchmark of issue 4: simulated probes stream
# result batches to one real single-node coordinator in the same process
# (separate tokio runtimes, so their CPU is told apart), pipelining up to
# a window of unacknowledged results each. Two cases: as fast as acks allow
# (sustained maximum), and paced at RATE results/s (the goal rate: CPU and
# ack latency there). Each case fails loudly (exit status 1, "!!!" lines)
# unless every result sent was acknowledged and counted once by the
# coordinator. See coordinator/examples/ingest_bench.rs for every figure.
#
# Usage: bench/ingest.sh           (from anywhere; builds release first)
# Environment:
#   DURATION=20s  measured window per case     WARMUP=5s  sending before it
#   PROBES=16  REGIONS=4  ENDPOINTS=400  BATCH=500  WINDOW=20000 (per probe)
#   RATE=100000   the paced case's target results/s (0: skip that case)
#   OUT=target/bench  where each case's report goes (ingest-CASE.txt)
#
# All traffic is on 127.0.0.1; the bench bounds every step in time.
set -euo pipefail

DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-5s}
PROBES=${PROBES:-16}
REGIONS=${REGIONS:-4}
ENDPOINTS=${ENDPOINTS:-400}
BATCH=${BATCH:-500}
WINDOW=${WINDOW:-20000}
RATE=${RATE:-100000}

cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$target_dir/bench}
mkdir -p "$OUT"

echo "== building (release)"
cargo build --release -p vantage-coordinator --example ingest_bench
BENCH=$target_dir/release/examples/ingest_bench

echo "== machine: $(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(uname -sr), $(date -u +%Y-%m-%dT%H:%MZ)"

status=0
run_case() { # name extra-args...
  local name=$1; shift
  local cmd=("$BENCH" --probes "$PROBES" --regions "$REGIONS" --endpoints "$ENDPOINTS" --batch "$BATCH"
    --window "$WINDOW" --duration "$DURATION" --warmup "$WARMUP" "$@")
  echo "== $name"
  echo "\$ ${cmd[*]}"
  # The bench bounds itself (warm-up + window + 60 s per setup step); timeout is a backstop.
  timeout 600 "${cmd[@]}" | tee "$OUT/ingest-$name.txt" || status=1
}
run_case max
if [[ $RATE != 0 ]]; then run_case "paced-$RATE" --rate "$RATE"; fi
exit "$status"
