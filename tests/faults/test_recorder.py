"""The fault-table recorder finds the fault tests that live elsewhere by node id (no servers needed)."""

from __future__ import annotations

from tests.faults.recorder import ELSEWHERE, known


def test_catalogued_node_ids_and_parametrised_ones_are_known():
    entry, param = known(
        "tests/data/test_chips.py::test_bad_data_is_a_counted_skip_with_its_reason[wrong_crs-crs_mismatch]")
    assert param == "wrong_crs-crs_mismatch" and entry.fault == "bad input: {param}"
    assert known("tests/train/test_pretrain_faults.py::test_killed_worker_resumes_from_the_last_checkpoint")[1] == ""
    assert known("tests/faults/test_bad_requests.py::test_an_empty_sites_table_is_a_clear_error") is None


def test_catalogue_points_at_tests_that_exist():
    from pathlib import Path

    root = Path(__file__).parents[2]
    for nodeid in ELSEWHERE:
        path, name = nodeid.split("::")
        assert f"def {name}(" in (root / path).read_text(), nodeid
