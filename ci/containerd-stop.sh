#!/usr/bin/env bash
# containerd-stop.sh WORKDIR [--purge]
#
# Stops what containerd-start.sh started in WORKDIR and leaves nothing
# running or mounted:
#   1. every task of that containerd, in every namespace: SIGKILL, then
#      delete, then delete the containers,
#   2. containers left behind by a containerd that is already gone:
#      `runc delete --force` under WORKDIR/runc,
#   3. shims of that containerd (their command line names WORKDIR's socket),
#   4. containerd itself (SIGTERM, then SIGKILL after 10 s) and the
#      registries,
#   5. mounts below WORKDIR and the cgroups named after WORKDIR.
# Processes are found by pid file or by command line, and each one's
# executable is checked before it is signalled.
# --purge then removes WORKDIR, but only one that containerd-start.sh made
# and that has no mount left.
set -uo pipefail

[ $# -ge 1 ] || {
  echo "usage: $0 WORKDIR [--purge]" >&2
  exit 2
}
WORKDIR=$(cd "$1" 2>/dev/null && pwd) || {
  echo "$0: no such directory: $1" >&2
  exit 1
}
PURGE=0
[ "${2:-}" = --purge ] && PURGE=1
SOCKET=$WORKDIR/containerd.sock

log() { printf '[containerd-stop] %s\n' "$*" >&2; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
# stop_process PID EXE_SUBSTRING LABEL: SIGTERM, wait up to 10 s, SIGKILL.
stop_process() {
  local pid=$1 expected=$2 label=$3 exe
  alive "$pid" || return 0
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 0
  case "$exe" in
    *"$expected"*) ;;
    *)
      log "pid $pid runs $exe, not $expected: left alone"
      return 0
      ;;
  esac
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do
    if ! alive "$pid"; then
      log "stopped $label (pid $pid)"
      return 0
    fi
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  log "killed $label (pid $pid) after 10 s"
}

PREFIX=$(sed -n 's/^CONTAINERD_PREFIX=//p' "$WORKDIR/peers.env" 2>/dev/null)
CONTAINERD_PID=$(cat "$WORKDIR/containerd.pid" 2>/dev/null)
CTR_BIN=${PREFIX:+$PREFIX/bin/ctr}
RUNC_BIN=${PREFIX:+$PREFIX/bin/runc}

# 1. Tasks and containers, through the daemon while it runs.
if alive "$CONTAINERD_PID" && [ -x "$CTR_BIN" ]; then
  for ns in $("$CTR_BIN" -a "$SOCKET" namespaces ls -q 2>/dev/null); do
    ctr=("$CTR_BIN" -a "$SOCKET" -n "$ns")
    for task in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
      "${ctr[@]}" tasks kill -s SIGKILL --all "$task" >/dev/null 2>&1 ||
        "${ctr[@]}" tasks kill -s SIGKILL "$task" >/dev/null 2>&1
      for _ in $(seq 50); do
        "${ctr[@]}" tasks ls 2>/dev/null |
          awk -v t="$task" '$1 == t { print $3 }' | grep -qx STOPPED && break
        sleep 0.1
      done
      "${ctr[@]}" tasks delete --force "$task" >/dev/null 2>&1 &&
        log "deleted task $ns/$task"
    done
    for container in $("${ctr[@]}" containers ls -q 2>/dev/null); do
      "${ctr[@]}" containers delete "$container" >/dev/null 2>&1 &&
        log "deleted container $ns/$container"
    done
  done
fi

# 2. Containers whose daemon is gone. The shim puts each namespace's runc
# state in WORKDIR/runc/NAMESPACE.
if [ -x "$RUNC_BIN" ]; then
  for root in "$WORKDIR"/runc/*/; do
    [ -d "$root" ] || continue
    for id in $("$RUNC_BIN" --root "$root" list -q 2>/dev/null); do
      "$RUNC_BIN" --root "$root" delete --force "$id" 2>/dev/null &&
        log "force-deleted container $id in $root"
    done
  done
fi

# 3. Shims started by this containerd: their argv contains the socket path
# as a separate argument (-address WORKDIR/containerd.sock).
for dir in /proc/[0-9]*; do
  tr '\0' '\n' <"$dir/cmdline" 2>/dev/null | grep -qxF -- "$SOCKET" || continue
  case "$(readlink "$dir/exe" 2>/dev/null)" in
    *containerd-shim*) stop_process "${dir#/proc/}" containerd-shim shim ;;
  esac
done

# 4. containerd and the registries.
stop_process "$CONTAINERD_PID" containerd containerd
rm -f "$WORKDIR/containerd.pid"
for pid_file in "$WORKDIR"/registry-*.pid; do
  [ -f "$pid_file" ] || continue
  stop_process "$(cat "$pid_file")" docker-registry "$(basename "$pid_file" .pid)"
  rm -f "$pid_file"
done

# 5. Mounts below WORKDIR, deepest first, and the cgroups of c1.
grep -F " $WORKDIR/" /proc/self/mounts | awk '{ print $2 }' | sort -r |
  while read -r mount_point; do
    umount "$mount_point" 2>/dev/null || umount -l "$mount_point" 2>/dev/null
    log "unmounted $mount_point"
  done
cgroup=ctd-$(printf '%s' "$WORKDIR" | sha256sum | cut -c1-12)
for dir in /sys/fs/cgroup/*/"$cgroup" /sys/fs/cgroup/"$cgroup"; do
  [ -d "$dir" ] || continue
  find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
done
rm -f "$SOCKET" "$SOCKET.ttrpc" "$WORKDIR/debug.sock"

if [ "$PURGE" = 1 ]; then
  if [ -f "$WORKDIR/.containerd-transfer" ] &&
    ! grep -qF " $WORKDIR/" /proc/self/mounts; then
    rm -rf "$WORKDIR" && log "removed $WORKDIR"
  else
    log "kept $WORKDIR: it has mounts or was not made by containerd-start.sh"
  fi
fi
log "done"
