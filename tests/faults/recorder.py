"""pytest plugin that turns fault-injection tests into the rows of docs/reliability.md.

Loaded by ``scripts/reliability.sh`` (``-p tests.faults.recorder -m faults``), never by default. It

1. marks the fault tests that live elsewhere (:data:`ELSEWHERE`: the Ray Train worker kill, the
   inference kill, STAC faults, bad inputs, invalid configs) with ``faults`` by node id, so that
   ``-m faults`` collects them beside tests/faults without editing their files;
2. records every ``faults`` test's outcome: the fault and the expectation (from its marker or from
   :data:`ELSEWHERE`), what it observed (``record_property("observed", ...)`` in tests/faults, else a
   line of its captured output matched by the catalog's pattern, else its outcome) and the data lost;
3. writes them as JSON to ``$JOINTSSL_FAULTS_JSON`` at the end, which
   :func:`jointssl.bench.report.write_reliability` renders.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Known:
    """A fault test outside tests/faults: what it injects, what should happen, how to read its output."""

    fault: str
    expected: str
    observed: str | None = None
    """Regex over the test's captured stdout/stderr; its first match (group 0) is the observation."""
    data_lost: str | None = None
    """Regex whose groups fill ``data_lost_format``."""
    data_lost_format: str = "{0}"
    lost_if_passed: str = "none"
    """What a pass proves was lost when the output says nothing."""


ELSEWHERE: dict[str, Known] = {
    "tests/train/test_pretrain_faults.py::test_killed_worker_resumes_from_the_last_checkpoint": Known(
        "Ray Train worker SIGKILLed mid-epoch (2 CPU workers, checkpoint every 4 steps)",
        "workers restart from the last committed checkpoint; same MLflow run; <= 1 checkpoint interval lost",
        observed=r"killed worker PID \d+ at step \d+, last checkpoint at step \d+: steps trained twice \[[^\]]*\]",
        data_lost=r"\((\d+) lost; checkpoint_every (\d+)\)", data_lost_format="{0} steps (checkpoint interval {1})"),
    "tests/infer/test_infer_ray.py::test_killed_run_resumes_with_every_tile_exactly_once": Known(
        "inference run SIGKILLed (driver and its Ray) after a few partitions, then re-run",
        "the re-run redoes only uncommitted partitions: every tile exactly once",
        observed=r"after kill \+ resume: [^\n]*",
        data_lost=r"duplicates (\d+), gaps (\d+)", data_lost_format="duplicates {0}, gaps {1}"),
    "tests/train/test_node_loss.py::test_a_lost_node_resumes_from_the_last_checkpoint_when_capacity_returns": Known(
        "Ray node lost during pre-training (raylet SIGKILLed by PID; 2 CPU workers, one per node), a node joins later",
        "workers restart from the last committed checkpoint when both fit again; same MLflow run; "
        "<= 1 checkpoint interval lost",
        observed=r"node lost: raylet PID \d+ SIGKILLed at step [^\n]*\]",
        data_lost=r"\((\d+) lost; checkpoint_every (\d+)\)", data_lost_format="{0} steps (checkpoint interval {1})"),
    "tests/train/test_node_loss.py::test_no_room_for_the_workers_stops_with_a_resumable_error": Known(
        "Ray node lost during pre-training and never replaced (no room for the worker group)",
        "a bounded wait, then exit 1 with one error naming the last checkpoint and how to resume; not a hang",
        observed=r"no room after the node loss: exit \d+ after [\d.]+ s"),
    "tests/infer/test_node_loss.py::test_a_lost_node_leaves_every_tile_predicted_exactly_once": Known(
        "Ray node lost during inference (raylet of the second node SIGKILLed by PID while its actors work)",
        "the lost actors restart on the node left; the run finishes with every tile exactly once",
        observed=r"node lost: raylet PID [^\n]*",
        data_lost=r"duplicates (\d+), gaps (\d+)", data_lost_format="duplicates {0}, gaps {1}"),
    "tests/infer/test_chaos.py::test_a_few_random_faults_are_all_recovered_with_every_tile_once": Known(
        "chaos (small, seeded): 4 random faults (MLflow and S3 restarts, a predictor kill, a truncated STAC page) "
        "over inference on S3",
        "every fault recovered; every run's tiles exactly once",
        observed=r"chaos: \{[^\n]*\}",
        data_lost=r"'tiles_duplicated': (\d+), 'tiles_missing': (\d+)", data_lost_format="duplicates {0}, missing {1}"),
    "tests/infer/test_infer_ray.py::test_an_area_without_imagery_is_an_error_that_says_so": Known(
        "empty area: inference over a bbox with no imagery", "exit 1, 'no imagery in the area' and a fix"),
    "tests/infer/test_cli_errors.py::test_no_area_is_exit_2": Known(
        "invalid config: inference without an area", "exit 2 naming infer.area, before anything starts"),
    "tests/stac/test_client_faults.py::test_429_with_retry_after_then_200_is_retried_and_counted": Known(
        "STAC API answers 429 (Retry-After: 1), then 503", "retried, Retry-After honoured, retries counted"),
    "tests/stac/test_client_faults.py::test_truncated_json_page_is_retried_by_the_search": Known(
        "STAC API returns a truncated JSON page (HTTP 200)", "the search is retried with backoff and completes"),
    "tests/stac/test_client_faults.py::test_persistent_500_gives_up_with_a_clear_error": Known(
        "STAC API answers 500 to every request", "bounded retries, then a clear error with the statuses seen"),
    "tests/stac/test_client_faults.py::test_unreachable_api_names_the_url": Known(
        "STAC API unreachable (nothing listens)", "a clear error naming the URL"),
    "tests/data/test_chips.py::test_bad_data_is_a_counted_skip_with_its_reason": Known(
        "bad input: {param}", "the chip is a counted skip with reason '{last}'; the batch goes on"),
    "tests/data/test_index_services.py::test_index_and_chips_through_s3_and_pgstac": Known(
        "bad input: an object missing from S3 (404 from SeaweedFS)", "a counted skip 'missing_file', not a retry loop"),
    "tests/data/test_dataset.py::test_batch_loader_keeps_the_batch_and_counts_reasons": Known(
        "bad input: missing asset and a site without items, in one batch",
        "counted skips per reason; the batch keeps every site"),
    "tests/test_cli.py::test_bad_config_exits_2_naming_key_and_file": Known(
        "invalid config: unknown key in the YAML file", "exit 2 naming the key, the file and the accepted keys"),
    "tests/test_cli.py::test_missing_config_file_exits_2": Known(
        "invalid config: the config file does not exist", "exit 2 saying so"),
}
REASONS = {"missing_asset": "missing asset", "wrong_crs": "wrong CRS metadata", "missing_file": "missing file",
           "corrupt_file": "corrupt COG (tiles cut off)", "all_nodata": "all-nodata chip", "nan": "NaN pixels",
           "no_projection": "no projection metadata"}


def known(nodeid: str) -> tuple[Known, str] | None:
    """The catalog entry of a node id (parametrised ids match their function) and its parameter."""
    base, _, param = nodeid.partition("[")
    entry = ELSEWHERE.get(base)
    return (entry, param.rstrip("]")) if entry else None


@pytest.hookimpl(tryfirst=True)  # before -m deselects: the catalogued tests must carry the marker by then
def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if item.get_closest_marker("faults") is None and known(item.nodeid):
            item.add_marker(pytest.mark.faults)


def pytest_configure(config) -> None:
    config._fault_rows = []  # type: ignore[attr-defined]  # pytest Config


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if item.get_closest_marker("faults") is None:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        item.config._fault_rows.append(row(item, report))


def row(item, report) -> dict:
    marker = item.get_closest_marker("faults")
    props = dict(report.user_properties)
    output = "\n".join(text for _, text in report.sections)  # captured stdout, stderr and log of every phase
    entry = known(item.nodeid)
    fault, expected, observed, lost = marker.kwargs.get("fault"), marker.kwargs.get("expected"), None, None
    if entry is not None:
        spec, param = entry
        first, last = param.split("-")[0], param.split("-")[-1]  # ids like "wrong_crs-crs_mismatch"
        fault = fault or spec.fault.format(param=REASONS.get(first, first))
        expected = expected or spec.expected.format(param=first, last=last)
        if spec.observed and (match := re.search(spec.observed, output)):
            observed = match.group(0)
        if spec.data_lost and (match := re.search(spec.data_lost, output)):
            lost = spec.data_lost_format.format(*match.groups())
        elif report.passed:
            lost = spec.lost_if_passed
    outcome = "passed" if report.passed else "skipped" if report.skipped else "failed"
    observed = props.get("observed", observed)
    if hasattr(report, "wasxfail"):  # a known failure, marked xfail(strict=True) with its cause
        outcome, observed = "known failure", f"{observed + '. ' if observed else ''}Cause: {report.wasxfail}"
    elif outcome == "skipped":
        observed = f"not run: {report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr}"
    elif outcome == "failed":
        detail = str(report.longrepr).strip().splitlines()[-1] if report.longrepr else ""
        observed = f"FAILED: {detail[:300]}" + (f" ({observed})" if observed else "")
    elif observed is None:
        observed = "as expected (the test's assertions passed)"
    return {"nodeid": item.nodeid, "fault": fault or item.name, "expected": expected or "", "observed": observed,
            "data_lost": props.get("data_lost", lost) or ("none" if outcome == "passed" else "-"),
            "outcome": outcome, "seconds": round(report.duration, 1)}


def pytest_sessionfinish(session) -> None:
    path = os.environ.get("JOINTSSL_FAULTS_JSON")
    if path:
        with open(path, "w") as handle:
            json.dump(session.config._fault_rows, handle, indent=2)
