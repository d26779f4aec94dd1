#!/usr/bin/env bash
# The test suite in two concurrent lanes, as `make test` runs it (inside the loopback-only namespace):
#   end-to-end: tests marked slow or services (the platform, Ray clusters, CLI runs), in this terminal;
#   unit:       everything else, in the background, its output printed when both are done.
# End-to-end tests wait on process starts (Ray's daemons and actors, CLI imports) and keep ~1.4 of 2 cores
# busy on average; the unit lane fills the rest. Two end-to-end lanes would compete for the same cores and
# start the session's platform twice (pytest-xdist with -n 2 was slower than one lane on 2 cores).
#
# usage: scripts/test-lanes.sh PYTHON [pytest arguments...]; exit status: non-zero when either lane failed
# (a lane that selects no test counts as passed).
set -uo pipefail

python=$1
shift
unit_log=$(mktemp "${TMPDIR:-/tmp}/jointssl-unit-lane.XXXXXX")
trap 'rm -f "$unit_log"' EXIT

"$python" -m pytest -m "not slow and not services" "$@" >"$unit_log" 2>&1 &
unit_pid=$!
trap 'kill "$unit_pid" 2>/dev/null; rm -f "$unit_log"' EXIT

echo "==== end-to-end lane (slow or services); the unit lane runs beside it"
"$python" -m pytest -m "slow or services" "$@"
e2e=$?
wait "$unit_pid"
unit=$?

echo
echo "==== unit lane (not slow and not services)"
cat "$unit_log"

status=0
for lane in "end-to-end:$e2e" "unit:$unit"; do
    code=${lane#*:}
    if [[ $code -ne 0 && $code -ne 5 ]]; then  # 5: no test selected
        echo "the ${lane%%:*} lane failed (pytest exit status $code)" >&2
        status=1
    fi
done
exit $status
