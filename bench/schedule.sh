#!/usr/bin/env bash
# Probe scheduling lag under load (issue 4): the agent's real scheduler
# driving the real check engine at RATE checks/s (RATE x INTERVAL endpoints)
# against the harness's loopback target, as `vantage-probe bench --schedule`.
# Reports lag (actual - planned start) p50/p90/p99/max, checks/s achieved,
# skipped and missed slots, CPU and peak RSS; exits 1 if a check failed or a
# slot was skipped or missed.
#
# Usage: bench/schedule.sh        (from anywhere; builds release first)
# Environment:
#   RATE=2000  checks/s         INTERVAL=1s  each endpoint's interval
#   DURATION=30s  measured window  WARMUP=3s  warm-up
#   CONCURRENCY=256  the scheduler's max_concurrency (the agent's default)
#   SCHEME=http  http or https (full handshake per check)
#   TARGET_THREADS=1  the target's runtime threads
#   OUT=target/bench  where the reports go (schedule-SCHEME-RATE-INTERVAL.json)
#
# All traffic goes to 127.0.0.1; the bench stops itself after WARMUP +
# DURATION (+ one check timeout to drain), and the target stops on exit.
set -euo pipefail

RATE=${RATE:-2000}
INTERVAL=${INTERVAL:-1s}
DURATION=${DURATION:-30s}
WARMUP=${WARMUP:-3s}
CONCURRENCY=${CONCURRENCY:-256}
SCHEME=${SCHEME:-http}
TARGET_THREADS=${TARGET_THREADS:-1}

cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$target_dir/bench}
mkdir -p "$OUT"
command -v jq >/dev/null || { echo "bench/schedule.sh needs jq (apt-get install -y jq)" >&2; exit 2; }

echo "== building (release)"
cargo build --release -p vantage-probe -p vantage-tests --bins
PROBE=$target_dir/release/vantage-probe
TARGET=$target_dir/release/vantage-bench-target

work=$(mktemp -d)
target_pid=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  if [[ -n $target_pid ]]; then kill "$target_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== machine: $(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(uname -sr), $(date -u +%Y-%m-%dT%H:%MZ)"
# The target reads its stdin until EOF: a FIFO held open on fd 9 keeps it
# alive, and it exits when this script does, even if killed with SIGKILL.
mkfifo "$work/ctl"
"$TARGET" --dir "$work" --threads "$TARGET_THREADS" <"$work/ctl" >"$work/urls.json" 2>"$work/target.log" &
target_pid=$!
exec 9>"$work/ctl"
for _ in $(seq 100); do [[ -s $work/urls.json ]] && break; sleep 0.1; done
[[ -s $work/urls.json ]] || { echo "the target did not start:" >&2; cat "$work/target.log" >&2; exit 1; }
url=$(jq -r ".$SCHEME" "$work/urls.json")
extra=()
[[ $SCHEME == https ]] && extra=(--ca "$(jq -r .ca "$work/urls.json")")

report="$OUT/schedule-$SCHEME-$RATE-$INTERVAL.json"
cmd=("$PROBE" bench --schedule --rate "$RATE" --interval "$INTERVAL" --duration "$DURATION"
  --warmup "$WARMUP" --concurrency "$CONCURRENCY" "${extra[@]}" "$url")
echo "\$ ${cmd[*]}"
status=0
timeout 600 "${cmd[@]}" --json >"$report" || status=$?
target_cpu=$(awk '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / 100 }' "/proc/$target_pid/stat")
if [[ -s $report ]]; then
  jq -r 'def r: . * 1000 | round / 1000;
"rate \(.checks_per_s | floor) checks/s of \(.target_rate) asked (\(.endpoints) endpoints every \(.interval_s) s, max_concurrency \(.max_concurrency))
slots \(.slots_planned) planned: \(.checks) ran, \(.failed) failed, \(.skipped) skipped, \(.missed) missed
lag ms p50 \(.lag_ms.p50 | r) p90 \(.lag_ms.p90 | r) p99 \(.lag_ms.p99 | r) max \(.lag_ms.max | r)
check latency ms p50 \(.latency_ms.p50 | r) p99 \(.latency_ms.p99 | r)
probe cpu \(.cpu.cores | r) cores (\(.cpu.ms_per_check | r) ms/check), peak rss \(.peak_rss_bytes / 1048576 * 10 | round / 10) MiB"' "$report"
  echo "target cpu over its whole run: $target_cpu s"
  echo "report: $report"
else
  echo "!!! no report (exit status $status)" >&2
fi
exit "$status"
