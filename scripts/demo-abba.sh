#!/usr/bin/env bash
# Compare `make demo` of two revisions on one machine: fresh clones run one after the other in the order
# new, old, old, new, so that a drift in the machine's speed weighs on both sides alike.
#   scripts/demo-abba.sh OLD_REV [NEW_REV]     (NEW_REV: HEAD; log: demo-abba.log in the current folder)
# Each revision's set-up runs first and is timed apart from its demo. Each clone's demo writes its stage
# times to <clone>/.jointssl/local/demo/timings.json (revisions older than that file print them in their
# summary). Run it on an otherwise idle machine and state the machine's load.
set -euo pipefail
OLD=${1:?usage: scripts/demo-abba.sh OLD_REV [NEW_REV]}
REPO=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
NEW=$(git -C "$REPO" rev-parse --short "${2:-HEAD}")
OLD=$(git -C "$REPO" rev-parse --short "$OLD")
LOG=${LOG:-$PWD/demo-abba.log}
WORK=$(mktemp -d /tmp/demo-abba.XXXXXX)
i=0
for rev in "$NEW" "$OLD" "$OLD" "$NEW"; do
  i=$((i + 1))
  dir=$WORK/$i-$rev
  git clone -q "$REPO" "$dir" && git -C "$dir" checkout -q "$rev"
  # Set-up first, timed apart: a revision's set-up re-installs when the shared venv's stamp is another's
  # (and older revisions install system packages), which is not demo time.
  target=setup-demo
  grep -q '^setup-demo:' "$dir/Makefile" || target=setup
  began=$(date +%s.%N)
  (cd "$dir" && make "$target" > "$WORK/$i-$rev.setup.log" 2>&1)
  echo "$i $rev ${target}_s=$(echo "$(date +%s.%N) - $began" | bc)" >> "$LOG"
  echo "$i $rev start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$LOG"
  began=$(date +%s.%N)
  rc=0
  (cd "$dir" && PYTHONPATH="$dir" make demo > "$WORK/$i-$rev.log" 2>&1) || rc=$?
  ended=$(date +%s.%N)
  echo "$i $rev rc=$rc make_demo_s=$(echo "$ended - $began" | bc) end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$LOG"
  if [ -f "$dir/.jointssl/local/demo/timings.json" ]; then tr -d '\n ' < "$dir/.jointssl/local/demo/timings.json" >> "$LOG"; echo >> "$LOG"; fi
done
echo "logs and clones: $WORK; summary: $LOG"
