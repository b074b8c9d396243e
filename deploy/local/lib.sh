# shellcheck shell=bash
# Shared by cluster.sh and mesh.sh (sourced, not run).

# stop_pidfile PIDFILE LABEL: SIGTERMs the process PIDFILE names, waits up
# to 5 s, then SIGKILLs it; removes PIDFILE. Nothing to do without one.
stop_pidfile() {
  local pidfile="$1" label="$2" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "$label did not stop in 5 s; killing" >&2
      kill -KILL "$pid"
    fi
    echo "stopped $label"
  fi
  rm -f "$pidfile"
}
