"""Where Ray work runs: the configured cluster (ray.address / RAY_ADDRESS) or a local Ray started here."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator

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
        address = None  # a job-submission (dashboard) URL: inside 'ray job submit' Ray finds its cluster itself
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=config.num_cpus, include_dashboard=False, log_to_driver=False)
    except Exception as err:  # noqa: BLE001 - ray.init raises many types for "cannot connect"
        raise JointsslError(
            f"cannot start or reach Ray ({address or 'local'}): {type(err).__name__}: {err}",
            hint="check ray.address / RAY_ADDRESS ('jointssl platform status' shows the local head)",
        ) from None
    try:
        yield
    finally:
        ray.shutdown()
