#!/usr/bin/env bash
# Regenerate docs/reliability.md: run every fault-injection test against the real local services in a
# loopback-only network namespace, then render the table (fault, expected, observed, data lost) from
# what the tests recorded. The tests are tests/faults plus the fault tests that live beside the code
# they test (Ray Train worker kill, inference kill, STAC faults, bad inputs, invalid configs), which
# tests/faults/recorder.py selects by node id, and the long ones the suite skips (JOINTSSL_LONG_FAULTS=1:
# node loss with recovery). Takes ~15 minutes on 2 cores.
#
#   scripts/reliability.sh                 # with .venv (or $JOINTSSL_VENV)
#   scripts/reliability.sh -k store        # extra pytest arguments narrow the run (the table shrinks too)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${JOINTSSL_VENV:-.venv}/bin/python"
results="$(mktemp -t jointssl-faults-XXXXXX.json)"
trap 'rm -f "$results"' EXIT
status=0
infra/local/loopback-netns.sh env JOINTSSL_REQUIRE_NETNS=1 JOINTSSL_LONG_FAULTS=1 JOINTSSL_FAULTS_JSON="$results" \
  "$python" -m pytest -p tests.faults.recorder -m faults -q -p no:cacheprovider tests "$@" || status=$?
if [ ! -s "$results" ]; then
  echo "reliability: the tests recorded nothing (pytest exit $status); docs/reliability.md left as it was" >&2
  exit "${status:-1}"
fi
"$python" -m jointssl.bench.report reliability "$results" docs/reliability.md
exit "$status"
