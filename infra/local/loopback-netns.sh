#!/usr/bin/env bash
# Run a command inside a fresh network namespace whose only interface is loopback, so every server it
# starts (Ray, SeaweedFS, PostgreSQL, the STAC API, MLflow) is reachable on 127.0.0.1 only and no
# traffic leaves the machine. Ray otherwise resolves 127.0.0.1 to the host's external address.
# Needs root and iproute2; elsewhere (JOINTSSL_NETNS=0, or not root) the command runs as it is.
# The namespace is deleted on exit, and processes left in it are stopped by PID.
set -euo pipefail
if [ "${JOINTSSL_NETNS:-1}" = 0 ] || [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || [ -n "${JOINTSSL_IN_NETNS:-}" ]; then
  [ "$(id -u)" != 0 ] && [ -z "${JOINTSSL_IN_NETNS:-}" ] && echo "[netns] not root: running without a loopback-only namespace" >&2
  exec "$@"
fi
ns="jointssl-$$"
cleanup() {
  local pids
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  if [ -n "$pids" ]; then  # leftovers get TERM, up to 1 s to exit, then KILL
    for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      [ -z "$(ip netns pids "$ns" 2>/dev/null || true)" ] && break
      sleep 0.1
    done
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  fi
  ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
set +e
ip netns exec "$ns" env JOINTSSL_IN_NETNS="$ns" "$@"
rc=$?
exit $rc
