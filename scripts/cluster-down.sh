#!/usr/bin/env bash
# Stop the local control plane started by scripts/cluster-up.sh.
#
#   scripts/cluster-down.sh              (or: make cluster-down)
#   KEEP_STATE=1 scripts/cluster-down.sh # keep .cluster/ (logs, etcd data, certs)
#
# Stops only the processes whose PIDs cluster-up recorded in .cluster/pids/
# (and only if their command line still names the state folder), waits for
# them to exit, removes the host-path volumes this cluster provisioned under
# /tmp/hostpath_pv, then removes the state folder unless KEEP_STATE=1.
#
# Environment: CLUSTER_DIR (default <repo>/.cluster), KEEP_STATE, TOOLS_BIN.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${CLUSTER_DIR:-$ROOT/.cluster}"
BIN="${TOOLS_BIN:-$ROOT/.tools/bin}"

START=$SECONDS
log() { echo "[cluster] $* ($((SECONDS - START))s)"; }

if [[ ! -d "$STATE" ]]; then
  log "nothing to stop: no $STATE"
  exit 0
fi

# PID from pids/$1.pid if that process is alive and is one we started.
our_pid() {
  local f="$STATE/pids/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$STATE/" || return 1
  echo "$pid"
}

# True while $1 runs (a zombie, exited but not yet reaped by its parent, does not).
running() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat:0:1}" != Z ]]
}

# Host-path volumes of this cluster, asked for while the API still answers.
volumes=()
if [[ -x "$BIN/kubectl" && -f "$STATE/kubeconfig" ]] && our_pid kube-apiserver >/dev/null; then
  mapfile -t volumes < <("$BIN/kubectl" --kubeconfig "$STATE/kubeconfig" --request-timeout=5s \
    get persistentvolumes -o jsonpath='{range .items[*]}{.spec.hostPath.path}{"\n"}{end}' 2>/dev/null || true)
fi

# Clients first, etcd last.
names=(kwok kube-scheduler kube-controller-manager kube-apiserver etcd)
for f in "$STATE"/pids/*.pid; do
  [[ -f "$f" ]] || continue
  n="$(basename "$f" .pid)"
  [[ " ${names[*]} " == *" $n "* ]] || names+=("$n")
done

for name in "${names[@]}"; do
  if pid="$(our_pid "$name")"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do # up to 10 s
      running "$pid" || break
      sleep 0.1
    done
    if running "$pid"; then
      log "$name (pid $pid) ignored SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      while running "$pid"; do sleep 0.1; done
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$STATE/pids/$name.pid"
done

for v in "${volumes[@]}"; do
  # Only what the host-path provisioner made: /tmp/hostpath_pv/<uuid>.
  if [[ "$v" =~ ^/tmp/hostpath_pv/[0-9a-f-]+$ ]]; then rm -rf -- "$v"; fi
done

if [[ "${KEEP_STATE:-0}" == 1 ]]; then
  log "down; state kept in $STATE"
else
  rm -rf -- "$STATE"
  log "down; removed $STATE"
fi
