"""Ray sessions: what jointssl sets up around Ray's own behaviour (no cluster needed)."""

from __future__ import annotations

import logging

from jointssl.compute import RAY_DATA_PROGRESS_LOGGER, quiet_ray_data_progress


def test_ray_data_progress_table_is_quiet_without_a_terminal_only():
    logger = logging.getLogger(RAY_DATA_PROGRESS_LOGGER)
    saved = logger.level
    try:
        logger.setLevel(logging.NOTSET)
        quiet_ray_data_progress(interactive=True)
        assert logger.level == logging.NOTSET  # a terminal keeps Ray Data's progress bars as they are
        quiet_ray_data_progress(interactive=False)
        assert not logger.isEnabledFor(logging.INFO) and logger.isEnabledFor(logging.WARNING)
    finally:
        logger.setLevel(saved)


def test_environment_sets_and_removes_variables_for_the_block_only(monkeypatch):
    import os

    from jointssl.compute import environment

    monkeypatch.setenv("JOINTSSL_T_KEPT", "before")
    monkeypatch.delenv("JOINTSSL_T_NEW", raising=False)
    with environment({"JOINTSSL_T_KEPT": None, "JOINTSSL_T_NEW": "inside"}):
        assert "JOINTSSL_T_KEPT" not in os.environ and os.environ["JOINTSSL_T_NEW"] == "inside"
    assert os.environ["JOINTSSL_T_KEPT"] == "before" and "JOINTSSL_T_NEW" not in os.environ
