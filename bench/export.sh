#!/usr/bin/env bash
# The export benchmark of issue 10: the ingest benchmark's simulated probes
# (coordinator/examples/ingest_bench.rs) paced at RATE results/s into one
# real coordinator, once without export and once exporting every result
# with Prometheus remote-write into a real VictoriaMetrics (Debian's
# victoria-metrics, its own temporary directory, a free loopback port).
# The export case fails (exit 1, "!!!" lines) if any sample was dropped or
# failed, or fewer than 9 per acknowledged result were written.
#
# Usage: bench/export.sh          (from anywhere; builds release first)
# Environment:
#   RATE=50000  DURATION=20s  WARMUP=5s  PROBES=16  REGIONS=4  ENDPOINTS=400
#   EXPORT_BATCH=10000 (samples per request)  OUT=target/bench
#
# All traffic is on 127.0.0.1; the bench bounds every step in time.
set -euo pipefail

RATE=${RATE:-50000}
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-5s}
PROBES=${PROBES:-16}
REGIONS=${REGIONS:-4}
ENDPOINTS=${ENDPOINTS:-400}
EXPORT_BATCH=${EXPORT_BATCH:-10000}

cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$target_dir/bench}
mkdir -p "$OUT"
command -v victoria-metrics >/dev/null || { echo "victoria-metrics not found: apt-get install victoria-metrics" >&2; exit 1; }

echo "== building (release)"
cargo build --release -p vantage-coordinator --example ingest_bench
BENCH=$target_dir/release/examples/ingest_bench

vm_dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
victoria-metrics -storageDataPath="$vm_dir/data" -httpListenAddr="127.0.0.1:$port" \
  -dedup.minScrapeInterval=1ms -search.latencyOffset=0s >"$vm_dir/vm.log" 2>&1 &
vm_pid=$!
trap 'kill $vm_pid 2>/dev/null; wait $vm_pid 2>/dev/null; rm -rf "$vm_dir"' EXIT
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.1
done

echo "== machine: $(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(uname -sr), $(date -u +%Y-%m-%dT%H:%MZ)"
status=0
run_case() { # name extra-args...
  local name=$1; shift
  local cmd=("$BENCH" --probes "$PROBES" --regions "$REGIONS" --endpoints "$ENDPOINTS" --batch 500
    --window 20000 --duration "$DURATION" --warmup "$WARMUP" --rate "$RATE" "$@")
  echo "== $name"
  echo "\$ ${cmd[*]}"
  timeout 600 "${cmd[@]}" | tee "$OUT/export-$name.txt" || status=1
}
run_case "no-export"
vm_cpu_before=$(awk '{ print $14 + $15 }' "/proc/$vm_pid/stat")
run_case "remote-write" --remote-write "http://127.0.0.1:$port/api/v1/write" --export-batch "$EXPORT_BATCH"
vm_cpu_after=$(awk '{ print $14 + $15 }' "/proc/$vm_pid/stat")
echo "== victoria-metrics used $(( (vm_cpu_after - vm_cpu_before) / $(getconf CLK_TCK) )) CPU seconds during the export case"
curl -fs "http://127.0.0.1:$port/internal/force_flush" >/dev/null || true
series=$(curl -fs "http://127.0.0.1:$port/api/v1/series/count" || echo '?')
echo "== victoria-metrics series: $series (expected 400 endpoints x 4 regions' probes x 9 + 400 x 8 state series, of those the probes were assigned)"
exit "$status"
