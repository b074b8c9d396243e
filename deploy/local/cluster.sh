#!/usr/bin/env bash
# Runs a 3-node Vantage coordinator cluster on this machine, with TLS.
#
#   deploy/local/cluster.sh start     build, make certificates once, start 3 nodes
#   deploy/local/cluster.sh status    vantagectl cluster status against it
#   deploy/local/cluster.sh stop      stop the nodes (SIGTERM)
#   deploy/local/cluster.sh clean     stop and delete data, certificates, token
#
# Nodes listen on 127.0.0.1: API 7410/7420/7430, Raft 7411/7421/7431,
# HTTP 8081/8082/8083. Logs go to deploy/local/logs/node-N.log.
#
# Environment (used by mesh.sh, which runs the cluster on an address that
# network namespaces reach):
#   VANTAGE_LOCAL_ADDR=127.0.0.1  the address every node listens on; the
#       node certificates name it too (certs init --host)
#   VANTAGE_LOCAL_DIR=deploy/local  where the configs, certificates, data,
#       logs and admin token live; any directory other than deploy/local
#       gets node1-3.toml generated from deploy/local's, with the address
#       replaced
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=deploy/local/lib.sh
. "$here/lib.sh"
bin="${CARGO_TARGET_DIR:-$root/target}/release"
addr="${VANTAGE_LOCAL_ADDR:-127.0.0.1}"
dir="${VANTAGE_LOCAL_DIR:-$here}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
cd "$dir"

ctl() {
  "$bin/vantagectl" --server "https://$addr:7410" --ca "$dir/pki/ca.pem" --token-file "$dir/admin.token" "$@"
}

# Configs for another address: deploy/local's, with 127.0.0.1 replaced.
configs() {
  [ "$dir" = "$here" ] && return 0
  for n in 1 2 3; do
    sed "s/127\.0\.0\.1/$addr/g" "$here/node$n.toml" >"node$n.toml"
  done
}

start() {
  (cd "$root" && cargo build --release -p vantage-coordinator -p vantagectl)
  configs
  if [ ! -f pki/ca.pem ]; then
    if [ "$addr" = 127.0.0.1 ]; then
      "$bin/vantage-coordinator" certs init --dir pki --nodes 3
    else
      "$bin/vantage-coordinator" certs init --dir pki --nodes 3 --host "$addr"
    fi
  fi
  mkdir -p logs
  for n in 1 2 3; do
    if [ -f "logs/node-$n.pid" ] && kill -0 "$(cat "logs/node-$n.pid")" 2>/dev/null; then
      echo "node $n already running (pid $(cat "logs/node-$n.pid"))"
      continue
    fi
    VANTAGE_LOG="${VANTAGE_LOG:-info}" "$bin/vantage-coordinator" run --config "node$n.toml" >"logs/node-$n.log" 2>&1 &
    echo $! >"logs/node-$n.pid"
    echo "started node $n (pid $!, log $dir/logs/node-$n.log)"
  done
  echo "waiting for a leader ..."
  for _ in $(seq 1 50); do
    if [ -f admin.token ] && ctl cluster status >/dev/null 2>&1; then
      ctl cluster status
      echo
      echo "vantagectl against it:"
      echo "  $bin/vantagectl --server https://$addr:7410 --ca $dir/pki/ca.pem --token-file $dir/admin.token cluster status"
      return 0
    fi
    sleep 0.2
  done
  echo "no leader after 10 s; see $dir/logs/" >&2
  return 1
}

stop() {
  for n in 1 2 3; do
    stop_pidfile "logs/node-$n.pid" "node $n"
  done
}

case "${1:-}" in
  start) start ;;
  status) ctl cluster status ;;
  stop) stop ;;
  clean) stop; rm -rf data pki logs admin.token ;;
  *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
