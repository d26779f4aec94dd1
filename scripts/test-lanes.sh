#!/usr/bin/env bash
# The test suite in two concurrent lanes, as `make test` runs it (inside the loopback-only namespace):
#   platform: the tests that use the session's platform (S3, pgstac, MLflow server, Ray head) or the
#             inference world, in this terminal;
#   local:    every other test (unit tests, and end-to-end runs on a local Ray and sqlite), in the
#             background, its output printed when both are done.
# The lanes are tests/conftest.py's (JOINTSSL_TEST_LANE); each session fixture is built once, in its users'
# lane. End-to-end tests wait on process starts (Ray's daemons and actors, CLI imports) and keep ~1.4 of 2
# cores busy on average, so two lanes finish sooner than one; pytest-xdist with -n 2 did not (both workers
# started the platform and every session fixture).
#
# usage: scripts/test-lanes.sh PYTHON [pytest arguments...]; exit status: non-zero when either lane failed
# (a lane that selects no test counts as passed).
set -uo pipefail

python=$1
shift
local_log=$(mktemp "${TMPDIR:-/tmp}/jointssl-local-lane.XXXXXX")
trap 'rm -f "$local_log"' EXIT

JOINTSSL_TEST_LANE=local "$python" -m pytest "$@" >"$local_log" 2>&1 &
local_pid=$!
trap 'kill "$local_pid" 2>/dev/null; rm -f "$local_log"' EXIT

echo "==== platform lane; the local lane runs beside it"
JOINTSSL_TEST_LANE=platform "$python" -m pytest "$@"
platform=$?
wait "$local_pid"
local=$?

echo
echo "==== local lane"
cat "$local_log"

status=0
for lane in "platform:$platform" "local:$local"; do
    code=${lane#*:}
    if [[ $code -ne 0 && $code -ne 5 ]]; then  # 5: no test selected
        echo "the ${lane%%:*} lane failed (pytest exit status $code)" >&2
        status=1
    fi
done
exit $status
