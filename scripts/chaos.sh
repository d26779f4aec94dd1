#!/usr/bin/env bash
# The chaos run: a seeded random schedule of faults (STAC 429/5xx/slow/truncated, chip loader and
# predictor actor kills) over back-to-back inference runs on the test world, in the loopback-only network
# namespace; regenerates the chaos section of docs/reliability.md (between its chaos markers).
# See jointssl/bench/chaos.py. The world and index are generated into a temporary root (~1 minute).
#
#   scripts/chaos.sh                         # 100 faults over 480 s, seed 0
#   scripts/chaos.sh --faults 20 --duration 120 --seed 3
set -euo pipefail
cd "$(dirname "$0")/.."
python="${JOINTSSL_VENV:-.venv}/bin/python"
root="$(mktemp -d -t jointssl-chaos-XXXXXX)"
trap 'rm -rf "$root"' EXIT
common=(--config configs/test.yaml --storage.root "$root")
args=(--faults 100 --duration 480 --seed 0)
[ "$#" -gt 0 ] && args=("$@")
netns=(infra/local/loopback-netns.sh env JOINTSSL_REQUIRE_NETNS=1)  # world generation starts a Ray too
"${netns[@]}" "$python" -m jointssl world "${common[@]}" >/dev/null
"${netns[@]}" "$python" -m jointssl index "${common[@]}" >/dev/null
"${netns[@]}" "$python" -m jointssl bench chaos "${common[@]}" "${args[@]}" --write docs/reliability.md
