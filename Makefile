# The two commands of the README, and a few for developers. Everything runs through scripts/setup.sh,
# which is idempotent: the first call builds the environment, later calls re-use it.
VENV ?= $(or $(JOINTSSL_VENV),.venv)
export JOINTSSL_VENV := $(VENV)
NETNS := infra/local/loopback-netns.sh
PYTEST_ARGS ?=

.PHONY: setup setup-demo demo test lint test-fast platform-up platform-down lock

setup:
	@scripts/setup.sh

setup-demo:
	@scripts/setup.sh --demo

## make demo: set up what the demo needs, then run the main job end to end on the embedded default
## (stage timings: .jointssl/local/demo/timings.json)
demo: setup-demo
	@$(NETNS) $(VENV)/bin/jointssl demo --config configs/demo.yaml

## make lint: ruff and mypy (strict on jointssl/), as CI runs them
lint: setup
	@$(VENV)/bin/ruff check jointssl jobs tests scripts
	@$(VENV)/bin/mypy

## make test: set up, lint (ruff, mypy), then run every test (unit + real local services) in a loopback-only
## namespace, in two concurrent lanes (scripts/test-lanes.sh: the platform's tests, and the others beside them)
test: setup lint
	@$(NETNS) env JOINTSSL_REQUIRE_NETNS=$${JOINTSSL_REQUIRE_NETNS:-auto} scripts/test-lanes.sh $(VENV)/bin/python $(PYTEST_ARGS)

## make test-fast: unit tests only (no servers)
test-fast: setup
	@$(VENV)/bin/python -m pytest -m "not services and not slow" $(PYTEST_ARGS)

platform-up: setup
	@$(VENV)/bin/jointssl platform up

platform-down:
	@$(VENV)/bin/jointssl platform down

## make lock: rebuild the pinned set from pyproject ranges in a throw-away venv
lock:
	rm -rf /tmp/jointssl-lock-venv && python3.11 -m venv /tmp/jointssl-lock-venv
	/tmp/jointssl-lock-venv/bin/pip install -q -e '.[platform,test]' "botocore<1.43.118"
	( head -3 requirements/lock-py311-linux.txt; /tmp/jointssl-lock-venv/bin/pip freeze | grep -v -E '^(-e |jointssl)' ) > requirements/lock.new
	mv requirements/lock.new requirements/lock-py311-linux.txt
