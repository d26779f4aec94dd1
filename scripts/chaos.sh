#!/usr/bin/env bash
# The chaos run: a seeded random schedule of faults over back-to-back inference runs (STAC 429/5xx/slow/
# truncated, chip loader and predictor actor kills, SeaweedFS S3 and MLflow server restarts) and a training
# run on two Ray nodes (train worker kill, node loss, MLflow restart), in the loopback-only network
# namespace; regenerates the chaos section of docs/reliability.md (between its chaos markers).
# See jointssl/bench/chaos.py. It starts a SeaweedFS, PostgreSQL and MLflow server of its own on free
# loopback ports (stopped by PID at the end) and generates the test world into that S3 (~1 minute).
#
#   scripts/chaos.sh                         # 100 faults (8 in training), seed 0: ~15 min on 2 cores
#   scripts/chaos.sh --faults 20 --train-faults 3 --duration 120 --train-duration 60 --seed 3
set -euo pipefail
cd "$(dirname "$0")/.."
python="${JOINTSSL_VENV:-.venv}/bin/python"
scratch="$(mktemp -d -t jointssl-chaos-XXXXXX)"  # storage.root is replaced by the run's own S3 bucket
trap 'rm -rf "$scratch"' EXIT
args=(--faults 100 --train-faults 8 --duration 360 --train-duration 90 --seed 0)
[ "$#" -gt 0 ] && args=("$@")
infra/local/loopback-netns.sh env JOINTSSL_REQUIRE_NETNS=1 "$python" -m jointssl bench chaos \
    --config configs/test.yaml --storage.root "$scratch" "${args[@]}" --write docs/reliability.md
