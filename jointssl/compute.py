"""Where Ray work runs: the configured cluster (ray.address / RAY_ADDRESS) or a local Ray started here."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from jointssl.config.schema import RayConfig
from jointssl.errors import JointsslError

log = logging.getLogger(__name__)


@contextmanager
def ray_session(config: RayConfig) -> Iterator[None]:
    """Connect to (or start) Ray for the duration of a block; a Ray already initialised is re-used as is."""
    import ray

    if ray.is_initialized():
        yield
        return
    address = config.address or os.environ.get("RAY_ADDRESS")
    if address and address.startswith("http"):
        # a job-submission (dashboard) URL, as 'jointssl platform env' exports for 'ray job submit':
        # drivers join that cluster through its GCS address when known, else start a local Ray
        # ('ray job submit' itself sets RAY_ADDRESS to the GCS address inside the job).
        address = os.environ.get("JOINTSSL_RAY_GCS_ADDRESS")
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            # address="local": a new Ray of our own. Without it ray.init joins whatever cluster 'ray start'
            # last recorded on this machine (/tmp/ray/ray_current_cluster), which may be another user's,
            # or unreachable from this network namespace (it then waits on that GCS for minutes).
            with environment({"RAY_ADDRESS": None}):  # ray.init would read an http RAY_ADDRESS itself
                ray.init(address="local", num_cpus=config.num_cpus, include_dashboard=False, log_to_driver=False)
    except Exception as err:  # ray.init raises many types for "cannot connect"
        raise JointsslError(
            f"cannot start or reach Ray ({address or 'local'}): {type(err).__name__}: {err}",
            hint="check ray.address / RAY_ADDRESS ('jointssl platform status' shows the local head)",
        ) from None
    quiet_ray_data_progress()
    try:
        yield
    finally:
        ray.shutdown()


RAY_DATA_PROGRESS_LOGGER = "ray.data._internal.progress.logging_progress"
"""Where Ray Data logs its operator table (~14 lines every few seconds) when stdout is not a terminal."""


def quiet_ray_data_progress(interactive: bool | None = None) -> None:
    """Without a terminal (a log file, ``ray job submit``, a Kubernetes pod), keep only warnings of Ray Data's
    progress table: jobs print their own progress line, and the table would fill the log of a long run."""
    if not (sys.stdout.isatty() if interactive is None else interactive):
        logging.getLogger(RAY_DATA_PROGRESS_LOGGER).setLevel(logging.WARNING)


@contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """``values`` in os.environ for the block (None: the variable removed; Ray workers started inside inherit
    the result), the previous values restored after it."""
    before = {k: os.environ.get(k) for k in values}
    try:
        for key, value in values.items():
            _set_env(key, value)
        yield
    finally:
        for key, value in before.items():
            _set_env(key, value)


def _set_env(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value
