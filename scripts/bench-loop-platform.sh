#!/usr/bin/env bash
# `jointssl bench loop` on the local platform, the product's setting: COGs in SeaweedFS S3, items in pgstac
# behind stac-fastapi, both on 127.0.0.1. Run it inside the loopback-only namespace, on an idle machine:
#   infra/local/loopback-netns.sh scripts/bench-loop-platform.sh WORK_DIR [SITES ...]
# The first call starts the platform in WORK_DIR/platform and writes a 1,600-site demo-profile world to
# $ROOT (default s3://jointssl/bench-loop) and pgstac, with its index; a later call with the same WORK_DIR
# re-uses them.
# For each SITES (default: 160 1600) it prints the load average, runs the benchmark on a local Ray of its
# own (RAY_ADDRESS=local: the platform's Ray head stays idle) and keeps its JSON in WORK_DIR/loop-SITES.json.
# The platform is stopped by PID at the end.
set -euo pipefail
WORK=$(realpath -m "${1:?usage: scripts/bench-loop-platform.sh WORK_DIR [SITES ...]}")
shift
[ $# -gt 0 ] || set -- 160 1600
REPO=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
HOME_DIR=$WORK/platform
ROOT=${ROOT:-s3://jointssl/bench-loop}
C=(--config "$REPO/configs/demo.yaml" --storage.root "$ROOT")
mkdir -p "$WORK"
ts() { date -u +%T; }
echo "$(ts) platform up ($HOME_DIR)"
trap 'jointssl platform down --home "$HOME_DIR" > "$WORK/platform-down.log" 2>&1' EXIT  # also after a failed up
jointssl platform up --home "$HOME_DIR" > "$WORK/platform-up.log" 2>&1
eval "$(jointssl platform env --home "$HOME_DIR")"
if [ ! -f "$WORK/world.done" ]; then
  echo "$(ts) world: 1,600 sites -> $ROOT and pgstac"
  jointssl world "${C[@]}" --world.sites 1600 > "$WORK/world.log" 2>&1
  echo "$(ts) index"
  jointssl index "${C[@]}" > "$WORK/index.log" 2>&1
  touch "$WORK/world.done"
fi
for n in "$@"; do
  sleep 30  # let the load of the set-up settle
  echo "$(ts) bench loop --sites $n, load $(cut -d' ' -f1-3 /proc/loadavg)"
  RAY_ADDRESS=local jointssl bench loop --sites "$n" "${C[@]}" --ray.num_cpus 2 \
    > "$WORK/loop-$n.json" 2> "$WORK/loop-$n.log"
  echo "$(ts) ratio $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ratio"])' "$WORK/loop-$n.json")," \
       "load $(cut -d' ' -f1-3 /proc/loadavg)"
done
