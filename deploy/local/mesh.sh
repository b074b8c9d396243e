#!/usr/bin/env bash
# A whole Vantage mesh on one machine: the 3-node TLS cluster of cluster.sh
# and two `vantage-probe run` agents in each of three regions (local-eu,
# local-us, local-ap), checking demo endpoints (each node's API port, over TCP).
#
#   deploy/local/mesh.sh start     build, start the cluster, regions, tokens, endpoints, 6 probes
#   deploy/local/mesh.sh status    cluster status, probe list, and how the probes are isolated
#   deploy/local/mesh.sh stop      stop the probes and the nodes; remove the namespaces it made
#   deploy/local/mesh.sh clean     stop, then delete deploy/local/mesh/ (data, certificates, tokens)
#
# As root with `ip netns` (iproute2), each region's probes run in their own
# network namespace (vantage-eu, vantage-us, vantage-ap), joined to the host
# by a veth pair on 10.77.N.0/24 (host 10.77.N.1, namespace 10.77.N.2, its
# default route via the host), and the coordinators listen on 10.77.0.1, an
# address added to the host's loopback interface that the host and every
# namespace reach (the node certificates name it). Otherwise (not root, no
# iproute2, or VANTAGE_NETNS=0) everything runs as plain processes on
# 127.0.0.1, and the script says so.
#
# Everything it makes lives in deploy/local/mesh/: node configs generated
# from deploy/local/node{1,2,3}.toml, pki/, data/, logs/ (node-N.log,
# probe-NAME.log), admin.token, probes/NAME/{probe.toml,probe.token,spool}.
# `stop` removes only the namespaces, veth pairs and address it recorded in
# mesh/netns.created.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=deploy/local/lib.sh
. "$here/lib.sh"
bin="${CARGO_TARGET_DIR:-$root/target}/release"
state="$here/mesh"
regions=(eu us ap)
probes_per_region=2
host_addr=10.77.0.1
created="$state/netns.created"

use_netns() {
  [ "${VANTAGE_NETNS:-1}" != 0 ] && [ "$(id -u)" = 0 ] && command -v ip >/dev/null && ip netns list >/dev/null 2>&1
}

# The mode of a running mesh (recorded at start), else the one start would pick.
mode() {
  if [ -f "$state/mode" ]; then
    cat "$state/mode"
  elif use_netns; then
    echo netns
  else
    echo loopback
  fi
}

addr() {
  if [ "$(mode)" = netns ]; then echo "$host_addr"; else echo 127.0.0.1; fi
}

cluster() {
  VANTAGE_LOCAL_DIR="$state" VANTAGE_LOCAL_ADDR="$(addr)" "$here/cluster.sh" "$@"
}

ctl() {
  "$bin/vantagectl" --server "https://$(addr):7410" --ca "$state/pki/ca.pem" --token-file "$state/admin.token" "$@"
}

# Records one thing made, so stop removes exactly what start made.
made() { echo "$*" >>"$created"; }

network_up() {
  : >"$created"
  if ! ip -o addr show dev lo | grep -q " $host_addr/"; then
    ip addr add "$host_addr/32" dev lo
    made addr "$host_addr/32"
  fi
  local n=0 r ns
  for r in "${regions[@]}"; do
    n=$((n + 1))
    ns="vantage-$r"
    if ip netns list | grep -qw "$ns"; then
      echo "network namespace $ns already exists; run '$0 stop' first, or delete it (ip netns del $ns)" >&2
      return 1
    fi
    ip netns add "$ns"
    made netns "$ns"
    ip link add "vantage-$r-h" type veth peer name "vantage-$r-p"
    made veth "vantage-$r-h"
    ip link set "vantage-$r-p" netns "$ns"
    ip addr add "10.77.$n.1/24" dev "vantage-$r-h"
    ip link set "vantage-$r-h" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "10.77.$n.2/24" dev "vantage-$r-p"
    ip -n "$ns" link set "vantage-$r-p" up
    ip -n "$ns" route add default via "10.77.$n.1"
    echo "namespace $ns: 10.77.$n.2/24 via host 10.77.$n.1 (veth vantage-$r-h)"
  done
}

network_down() {
  [ -f "$created" ] || return 0
  local kind name
  while read -r kind name; do
    case "$kind" in
      netns) if ip netns del "$name" 2>/dev/null; then echo "removed network namespace $name"; fi ;;
      # Deleting one end of a veth pair deletes both (gone already when its namespace went).
      veth) if ip link del "$name" 2>/dev/null; then echo "removed veth pair $name"; fi ;;
      addr) if ip addr del "$name" dev lo 2>/dev/null; then echo "removed $name from lo"; fi ;;
    esac
  done < <(tac "$created")
  rm -f "$created"
}

probe_names() {
  local r i
  for r in "${regions[@]}"; do
    for i in $(seq 1 "$probes_per_region"); do echo "local-$r-$i local-$r vantage-$r"; done
  done
}

# Adds what is missing: regions, the demo endpoints.
preload() {
  local r n missing=()
  for r in "${regions[@]}"; do
    ctl --json region list | jq -e --arg r "local-$r" 'any(.[]; .name == $r)' >/dev/null || missing+=("local-$r")
  done
  [ ${#missing[@]} -eq 0 ] || ctl region add "${missing[@]}"
  # Each node's API port, as TCP checks: reachable from every namespace,
  # and something local that is up exactly while the node is. (The nodes'
  # HTTP ports serve TLS with the cluster's own CA, which checks do not
  # trust: an https:// check of /healthz would fail with unknown_issuer.)
  # Private addresses are refused unless allowed.
  for n in 1 2 3; do
    if ! ctl --json endpoint list | jq -e --arg e "local-node-$n" 'any(.[]; .name == $e)' >/dev/null; then
      ctl endpoint add "local-node-$n" "tcp://$(addr):74${n}0" --interval 5s --timeout 2s --allow-private
    fi
  done
}

# A token (issued now: a new one replaces the old), probe.toml, and the agent.
start_probe() {
  local name=$1 region=$2 ns=$3 dir="$state/probes/$1" pidfile="$state/logs/probe-$1.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "probe $name already running (pid $(cat "$pidfile"))"
    return 0
  fi
  mkdir -p "$dir"
  (umask 077 && ctl --json probe token create --probe "$name" --region "$region" | jq -r .token >"$dir/probe.token")
  local a
  a="$(addr)"
  cat >"$dir/probe.toml" <<EOF
# Written by deploy/local/mesh.sh; see deploy/probe.toml for every key.
probe_id = "$name"
region = "$region"
coordinators = ["https://$a:7410", "https://$a:7420", "https://$a:7430"]
token_file = "probe.token"
ca_file = "../../pki/ca.pem"
spool_dir = "spool"
max_concurrency = 64
EOF
  local cmd=("$bin/vantage-probe" run --config "$dir/probe.toml")
  if [ "$(mode)" = netns ]; then cmd=(ip netns exec "$ns" "${cmd[@]}"); fi
  VANTAGE_LOG="${VANTAGE_LOG:-info}" "${cmd[@]}" >"$state/logs/probe-$name.log" 2>&1 &
  echo $! >"$pidfile"
  echo "started probe $name in $region (pid $!$([ "$(mode)" = netns ] && echo ", namespace $ns"), log $state/logs/probe-$name.log)"
}

start() {
  (cd "$root" && cargo build --release -p vantage-coordinator -p vantagectl -p vantage-probe)
  mkdir -p "$state/logs"
  if [ ! -f "$state/mode" ]; then
    if use_netns; then
      network_up
      echo netns >"$state/mode"
    else
      echo "not root, or no 'ip netns': running the probes as plain processes on 127.0.0.1 (no namespaces)"
      echo loopback >"$state/mode"
    fi
  fi
  # Node certificates always name 127.0.0.1; in netns mode they must name
  # the host address too.
  if [ -f "$state/pki/ca.pem" ] && [ "$(addr)" != 127.0.0.1 ] &&
    [ "$(cat "$state/pki/made-for" 2>/dev/null)" != "$(addr)" ]; then
    echo "$state/pki does not cover $(addr); run '$0 clean' first" >&2
    return 1
  fi
  [ -f "$state/pki/ca.pem" ] || local fresh_pki=1
  cluster start
  if [ -n "${fresh_pki:-}" ]; then addr >"$state/pki/made-for"; fi
  preload
  local name region ns
  while read -r name region ns; do
    start_probe "$name" "$region" "$ns"
  done < <(probe_names)
  echo "waiting for the 6 probes to connect ..."
  local connected=0
  for _ in $(seq 1 60); do
    connected=$(ctl --json probe list | jq '[.[] | select(.connected)] | length')
    [ "$connected" -ge 6 ] && break
    sleep 0.5
  done
  ctl probe list
  if [ "$connected" -lt 6 ]; then
    echo "only $connected of 6 probes connected after 30 s; see $state/logs/probe-*.log" >&2
    return 1
  fi
  echo
  echo "The mesh is running ($(mode) mode). Next:"
  echo "  alias vantagectl='$bin/vantagectl --server https://$(addr):7410 --ca $state/pki/ca.pem --token-file $state/admin.token'"
  echo "  vantagectl probe list                # 6 probes, 2 per region"
  echo "  vantagectl endpoint list             # local-node-1..3: tcp://$(addr):7410, 7420, 7430"
  echo "  curl -s --cacert $state/pki/ca.pem https://$(addr):8081/api/endpoints | jq   # latest result per region and probe (on the leader)"
  echo "  $0 status | stop | clean"
}

status() {
  echo "mode: $(mode)"
  if [ "$(mode)" = netns ]; then
    local r
    for r in "${regions[@]}"; do
      if ip netns list | grep -qw "vantage-$r"; then
        echo "  vantage-$r: $(ip -n "vantage-$r" -o -4 addr show | awk '$2 != "lo" { print $4 }')"
      else
        echo "  vantage-$r: missing"
      fi
    done
  fi
  cluster status
  echo
  ctl probe list
}

stop() {
  local name _r _ns
  while read -r name _r _ns; do
    stop_pidfile "$state/logs/probe-$name.pid" "probe $name"
  done < <(probe_names)
  [ -d "$state" ] && cluster stop
  if [ "$(mode)" = netns ]; then network_down; fi
  rm -f "$state/mode"
}

case "${1:-}" in
  start) start ;;
  status) status ;;
  stop) stop ;;
  clean) stop; rm -rf "$state" ;;
  *) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
