#!/usr/bin/env bash
# The benchmark of issue 2: sustained cold checks per second of one
# vantage-probe process against local targets (plain HTTP, HTTPS with a full
# handshake per check, and HTTPS negotiating HTTP/2), with CPU time per check
# and peak memory; and, when Debian's prometheus-blackbox-exporter is
# installed, the same targets probed by blackbox_exporter for comparison.
#
# Usage: bench/run.sh            (from anywhere; builds release first)
# Environment:
#   DURATION=10s   measured window per case      WARMUP=1s  warm-up per case
#   CONCURRENCY=64 checks (probes) in flight     BLACKBOX=0 skip blackbox_exporter
#   OUT=target/bench  where the JSON reports go  TARGET_THREADS=2 target runtime threads
#   CASES="vantage-http vantage-https vantage-https-h2 blackbox-http blackbox-https"
#                  the cases to run (default: all)
#   IDLE_WAIT=120  seconds to wait, before each case, for other processes (a
#                  concurrent cargo build) to leave the CPUs idle
#   RETRIES=2      times to rerun a case that other processes disturbed anyway
#                  (more than 0.15 cores of theirs during it; it says so)
#
# Needs: cargo, jq; for the comparison, prometheus-blackbox-exporter and wrk
# (apt-get install -y prometheus-blackbox-exporter wrk). All traffic goes to
# 127.0.0.1; every step is bounded in time; the target and the exporter are
# stopped on exit, however the script ends.
set -euo pipefail

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-1s}
CONCURRENCY=${CONCURRENCY:-64}
BLACKBOX=${BLACKBOX:-1}
TARGET_THREADS=${TARGET_THREADS:-$(nproc)}
BLACKBOX_ADDR=${BLACKBOX_ADDR:-127.0.0.1:19115}
IDLE_WAIT=${IDLE_WAIT:-120}
RETRIES=${RETRIES:-2}
CASES=${CASES:-vantage-http vantage-https vantage-https-h2 blackbox-http blackbox-https}
wanted() { [[ " $CASES " == *" $1 "* ]]; }

cd "$(dirname "$0")/.."
OUT=${OUT:-target/bench}
mkdir -p "$OUT"
command -v jq >/dev/null || { echo "bench/run.sh needs jq (apt-get install -y jq)" >&2; exit 2; }

seconds() { # 10s, 1500ms, 1m -> seconds (for wrk and for bounds)
  case $1 in
    *ms) echo $(( ${1%ms} / 1000 )) ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}
cpu_ticks() { # utime + stime of a process, in USER_HZ (100/s) ticks
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
peak_rss_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
now_ns() { date +%s%N; }
# /proc/stat samples each tick into one category, so time in softirq (most
# of loopback TCP's work) shows as irq there although the process it ran on
# behalf of is also charged for it in /proc/PID/stat: "others" below is
# therefore all busy time (irq included) minus what the measured processes
# were charged, and is approximate (about ±0.05 cores on an idle machine).
machine_busy_ticks() { # all CPUs' busy time (user, nice, system, irq, softirq, steal), in ticks
  awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}
machine_irq_ticks() { # all CPUs' interrupt time, in ticks (mostly loopback TCP softirq)
  awk '/^cpu / { print $7 + $8 }' /proc/stat
}

echo "== building (release)"
cargo build --release -p vantage-probe -p vantage-tests --bins
PROBE=target/release/vantage-probe
TARGET=target/release/vantage-bench-target

work=$(mktemp -d)
target_pid=""
blackbox_pid=""
cleanup() {
  [[ -n $blackbox_pid ]] && kill "$blackbox_pid" 2>/dev/null || true
  [[ -n $target_pid ]] && kill "$target_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== machine"
{
  echo "cpus: $(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "kernel: $(uname -sr)"
  echo "rustc: $(rustc --version)"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
} | tee "$OUT/machine.txt"

echo "== starting the target ($TARGET_THREADS threads)"
# The target reads its stdin until EOF: a FIFO held open on fd 9 keeps it
# alive, and it exits when this script does, even if killed with SIGKILL.
mkfifo "$work/ctl"
"$TARGET" --dir "$work" --threads "$TARGET_THREADS" <"$work/ctl" >"$work/urls.json" 2>"$work/target.log" &
target_pid=$!
exec 9>"$work/ctl"
for _ in $(seq 100); do [[ -s $work/urls.json ]] && break; sleep 0.1; done
[[ -s $work/urls.json ]] || { echo "the target did not start:" >&2; cat "$work/target.log" >&2; exit 1; }
url() { jq -r ".$1" "$work/urls.json"; }
CA=$(url ca)
echo "http $(url http)  https $(url https)  https_h2 $(url https_h2)"

wait_for_idle() { # up to IDLE_WAIT seconds, until a second passes with < 0.1 cores busy
  local deadline=$((SECONDS + IDLE_WAIT)) m0 busy
  while :; do
    m0=$(machine_busy_ticks)
    sleep 1
    busy=$(( $(machine_busy_ticks) - m0 ))
    (( busy < 10 )) && return
    if (( SECONDS >= deadline )); then
      echo "!!! the machine is still busy ($busy% of a core): measuring anyway" >&2
      return
    fi
  done
}

summary=()
row=""        # a case's line of the summary table
disturbed=0   # whether other processes took CPU during the case
others=0      # how much, in cores
account_others() { # name window_s machine_ticks accounted_ticks
  others=$(awk -v w="$2" -v m="$3" -v a="$4" 'BEGIN { printf "%.2f", (m - a) / 100 / w }')
  if awk -v o="$others" 'BEGIN { exit !(o > 0.15) }'; then
    echo "!!! $1: other processes used about $others cores meanwhile: the figures are understated" >&2
    disturbed=1
  fi
}
measure() { # case-function name args...: reruns a disturbed case, RETRIES times at most
  local attempt
  for attempt in $(seq 0 "$RETRIES"); do
    row="" disturbed=0
    "$@"
    (( disturbed == 0 || attempt == RETRIES )) && break
    echo "!!! $2: discarding the disturbed run, measuring again ($((attempt + 1)) of $RETRIES)" >&2
  done
  summary+=("$row")
}

run_case() { # name url [extra vantage-probe args...]
  local name=$1 url=$2; shift 2
  echo "== vantage-probe bench: $name"
  local cmd=("$PROBE" bench "$url" --duration "$DURATION" --warmup "$WARMUP" --concurrency "$CONCURRENCY" --json "$@")
  echo "\$ ${cmd[*]}"
  wait_for_idle
  local t0 c0 m0 i0 t1 c1 m1 i1 status=0
  t0=$(now_ns); c0=$(cpu_ticks "$target_pid"); m0=$(machine_busy_ticks); i0=$(machine_irq_ticks)
  # Bounded: the bench stops itself after WARMUP + DURATION; timeout is a
  # backstop. bash's `time` gives the probe's CPU over its whole run, to
  # account for the machine's CPU (its own report covers the window only).
  { TIMEFORMAT='%U %S'; time timeout $(( $(seconds "$WARMUP") + $(seconds "$DURATION") + 30 )) \
      "${cmd[@]}" >"$OUT/$name.json" 2>&3; } 3>&2 2>"$work/probe.time" || status=$?
  t1=$(now_ns); c1=$(cpu_ticks "$target_pid"); m1=$(machine_busy_ticks); i1=$(machine_irq_ticks)
  if [[ ! -s $OUT/$name.json ]]; then
    echo "!!! $name: no report (exit status $status)" >&2
    row="$(printf '| %s | FAILED TO RUN (exit status %s) |' "$name" "$status")"
    return
  fi
  local elapsed probe_ticks target_cores irq_cores
  elapsed=$(awk -v ns=$((t1 - t0)) 'BEGIN { print ns / 1e9 }')
  probe_ticks=$(awk 'END { printf "%d", ($1 + $2) * 100 }' "$work/probe.time")
  target_cores=$(awk -v c=$((c1 - c0)) -v w="$elapsed" 'BEGIN { printf "%.2f", c / 100 / w }')
  account_others "$name" "$elapsed" $((m1 - m0)) $((probe_ticks + c1 - c0))
  irq_cores=$(awk -v c=$((i1 - i0)) -v w="$elapsed" 'BEGIN { printf "%.2f", c / 100 / w }')
  jq --argjson target_cores "$target_cores" --argjson others "$others" --argjson irq "$irq_cores" \
    '. + {target_cores: $target_cores, target_ms_per_check: ($target_cores * 1000 / .checks_per_s),
          softirq_cores: $irq, other_cores: $others}' \
    "$OUT/$name.json" >"$work/j" && mv "$work/j" "$OUT/$name.json"
  row="$(jq -r --arg name "$name" '
    def r(n): . * n | round / n;
    "| \($name) | \(.checks_per_s | floor) | \(.cpu.ms_per_check | r(1000)) | \(.cpu.cores | r(100)) | \(.latency_ms.p50 | r(100)) | \(.latency_ms.p99 | r(100)) | \(.peak_rss_bytes / 1048576 | r(10)) | \(.target_ms_per_check | r(1000)) | \(.target_cores) | – | \(.softirq_cores) | \(.other_cores) | \(.failed) |"' \
    "$OUT/$name.json")"
  if [[ $(jq .failed "$OUT/$name.json") != 0 ]]; then
    echo "!!! $name: $(jq .failed "$OUT/$name.json") checks FAILED:" >&2
    jq -r '.failures[] | "!!!   \(.count) \(.kind): \(.example)"' "$OUT/$name.json" >&2
  fi
}

wanted vantage-http && measure run_case vantage-http "$(url http)"
wanted vantage-https && measure run_case vantage-https "$(url https)" --ca "$CA"
wanted vantage-https-h2 && measure run_case vantage-https-h2 "$(url https_h2)" --ca "$CA"

if ! wanted blackbox-http && ! wanted blackbox-https; then
  :
elif [[ $BLACKBOX == 1 ]] && command -v prometheus-blackbox-exporter >/dev/null && command -v wrk >/dev/null; then
  echo "== blackbox_exporter $(prometheus-blackbox-exporter --version 2>&1 | awk 'NR == 1 { print $3 }')"
  cat >"$work/blackbox.yml" <<EOF
modules:
  http_2xx:
    prober: http
    timeout: 10s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
      tls_config:
        ca_file: $CA
EOF
  prometheus-blackbox-exporter --config.file="$work/blackbox.yml" --web.listen-address="$BLACKBOX_ADDR" \
    --log.level=warn >"$work/blackbox.log" 2>&1 9>&- &
  blackbox_pid=$!
  for _ in $(seq 100); do curl -fs "http://$BLACKBOX_ADDR/-/healthy" >/dev/null && break; sleep 0.1; done
  blackbox_case() { # name url
    local name=$1 url=$2 probe
    probe="http://$BLACKBOX_ADDR/probe?module=http_2xx&target=$url"
    echo "== blackbox_exporter: $name"
    if ! curl -fs --max-time 10 "$probe" | grep -q '^probe_success 1'; then
      echo "!!! $name: blackbox_exporter's probe of $url fails:" >&2
      curl -s --max-time 10 "$probe" | grep -E '^probe_(success|http_status_code)' >&2 || true
      row="$(printf '| %s | PROBE FAILS |' "$name")"
      return
    fi
    local wrk=(wrk -t1 -c"$CONCURRENCY" -s bench/blackbox-probe.lua --timeout 10s "$probe")
    echo "\$ ${wrk[*]} -d$(seconds "$DURATION")s  (after a -d$(seconds "$WARMUP")s warm-up)"
    wait_for_idle
    timeout 60 "${wrk[@]}" -d"$(seconds "$WARMUP")s" >/dev/null || true
    local t0 c0 tc0 m0 i0 t1 c1 tc1 m1 i1 wrk_ticks elapsed
    t0=$(now_ns); c0=$(cpu_ticks "$blackbox_pid"); tc0=$(cpu_ticks "$target_pid"); m0=$(machine_busy_ticks); i0=$(machine_irq_ticks)
    # wrk shares the machine too: bash's `time` gives its user and system CPU.
    { TIMEFORMAT='%U %S'; time timeout $(( $(seconds "$DURATION") + 30 )) "${wrk[@]}" -d"$(seconds "$DURATION")s" \
        >"$work/wrk.out" 2>&3; } 3>&2 2>"$work/wrk.time" || true
    t1=$(now_ns); c1=$(cpu_ticks "$blackbox_pid"); tc1=$(cpu_ticks "$target_pid"); m1=$(machine_busy_ticks); i1=$(machine_irq_ticks)
    wrk_ticks=$(awk 'END { printf "%d", ($1 + $2) * 100 }' "$work/wrk.time")
    elapsed=$(awk -v ns=$((t1 - t0)) 'BEGIN { print ns / 1e9 }')
    account_others "$name" "$elapsed" $((m1 - m0)) $((c1 - c0 + tc1 - tc0 + wrk_ticks))
    local report
    report=$(grep '^{' "$work/wrk.out" || true)
    if [[ -z $report ]]; then
      echo "!!! $name: wrk gave no report" >&2; cat "$work/wrk.out" >&2
      row="$(printf '| %s | NO REPORT |' "$name")"
      return
    fi
    jq --argjson ticks $((c1 - c0)) --argjson wrk_ticks "$wrk_ticks" --argjson target_ticks $((tc1 - tc0)) --argjson irq_ticks $((i1 - i0)) \
      --argjson elapsed "$elapsed" --argjson others "$others" --argjson rss "$(peak_rss_kib "$blackbox_pid")" \
      --arg url "$url" --arg concurrency "$CONCURRENCY" '
      . + {url: $url, concurrency: ($concurrency | tonumber),
           cpu: {ms_per_probe: ($ticks * 10 / .probes), cores: ($ticks / 100 / $elapsed)},
           target_cores: ($target_ticks / 100 / $elapsed), target_ms_per_probe: ($target_ticks * 10 / .probes),
           wrk_cores: ($wrk_ticks / 100 / $elapsed), softirq_cores: ($irq_ticks / 100 / $elapsed), other_cores: $others, peak_rss_bytes: ($rss * 1024)}' \
      <<<"$report" >"$OUT/$name.json"
    row="$(jq -r --arg name "$name" '
      def r(n): . * n | round / n;
      "| \($name) | \(.probes_per_s | floor) | \(.cpu.ms_per_probe | r(1000)) | \(.cpu.cores | r(100)) | \(.latency_ms.p50 | r(100)) | \(.latency_ms.p99 | r(100)) | \(.peak_rss_bytes / 1048576 | r(10)) | \(.target_ms_per_probe | r(1000)) | \(.target_cores | r(100)) | \(.wrk_cores | r(100)) | \(.softirq_cores | r(100)) | \(.other_cores) | \(.failed + .errors) |"' \
      "$OUT/$name.json")"
    if [[ $(jq '.failed + .errors' "$OUT/$name.json") != 0 ]]; then
      echo "!!! $name: $(jq '.failed + .errors' "$OUT/$name.json") probes FAILED or errored" >&2
    fi
  }
  if wanted blackbox-http; then measure blackbox_case blackbox-http "$(url http)"; fi
  if wanted blackbox-https; then measure blackbox_case blackbox-https "$(url https)"; fi
  kill "$blackbox_pid" && wait "$blackbox_pid" || true
  blackbox_pid=""
elif [[ $BLACKBOX == 1 ]]; then
  echo "== blackbox_exporter: skipped (apt-get install -y prometheus-blackbox-exporter wrk)"
fi

exec 9>&-   # the target sees the end of its stdin and reports what it served
for _ in $(seq 50); do kill -0 "$target_pid" 2>/dev/null || break; sleep 0.1; done
kill "$target_pid" 2>/dev/null && echo "!!! the target did not stop at the end of its input" >&2
wait "$target_pid" 2>/dev/null || true
target_pid=""
cat "$work/target.log"

echo
echo "== summary (reports in $OUT/; CPU columns in milliseconds per check and in cores busy)"
{
  echo "| case | checks/s | client ms/check | client cores | p50 ms | p99 ms | client peak RSS MiB | target ms/check | target cores | wrk cores | softirq cores | other cores | failed |"
  echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
  printf '%s\n' "${summary[@]}"
} | tee "$OUT/summary.md"
