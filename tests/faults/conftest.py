"""Fixtures of the fault-injection suite: a SeaweedFS of its own, to stop and restart at will.

The session's shared platform (tests/conftest.py) is never stopped here: other tests use it. The
dedicated store lives in its own home, on its own free ports, is started with the platform's own code
(:func:`jointssl.platform.stack.up` limited to ``seaweedfs``), killed by its PID (SIGKILL: an abrupt
outage, and no 13 s SIGTERM wait), restarted from the same data directory, and removed at the end.

Each fault test says what it injects and what should happen with ``@pytest.mark.faults(fault=...,
expected=...)`` and reports what it saw through ``record_property("observed", ...)`` and
``record_property("data_lost", ...)``; ``scripts/reliability.sh`` turns those into docs/reliability.md
(see tests/faults/recorder.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class DedicatedStore:
    """A SeaweedFS S3 that only this module uses."""

    settings: object  # jointssl.platform.settings.PlatformSettings
    env: dict[str, str]
    """AWS_ENDPOINT_URL and the keys: what a job needs to reach it."""

    @property
    def home(self) -> Path:
        return self.settings.home  # type: ignore[attr-defined]  # PlatformSettings

    def _service(self):
        from jointssl.platform import credentials, stack

        return stack.build_services(self.settings, credentials.load(self.home))["seaweedfs"]

    def kill(self) -> float:
        """SIGKILL the store and its helpers (by PID); returns the time it went down (monotonic)."""
        left = self._service().process.stop(signal.SIGKILL, timeout=10.0)
        assert not left, f"SeaweedFS processes survived SIGKILL: {left}"
        return time.monotonic()

    def start(self) -> float:
        """Start it again on the same ports and data; returns the seconds until it was healthy."""
        from jointssl.platform import stack

        return stack.up(self.settings, only=("seaweedfs",)).seconds


@pytest.fixture(scope="module")
def dedicated_store() -> Iterator[DedicatedStore]:
    from jointssl.platform import stack
    from jointssl.platform.settings import PlatformSettings
    from tests.conftest import make_home, pick_ports

    home = make_home("jointssl-faults-s3-")
    settings = PlatformSettings(home=home, ports=pick_ports())
    try:
        stack.up(settings, only=("seaweedfs",))
        store = DedicatedStore(settings, {})
        store.env = store._service().client_env()
        yield store
    finally:
        store = DedicatedStore(settings, {})
        if store._service().process.running():
            store.kill()
        left = stack.down(home)
        shutil.rmtree(home, ignore_errors=True)
        assert not left, f"SeaweedFS processes left running: {left}"


@pytest.fixture()
def store_env(dedicated_store, monkeypatch) -> dict[str, str]:
    """This test's process talks to the dedicated store (and to nothing else)."""
    for key in ("AWS_ENDPOINT_URL_S3", "JOINTSSL_STORAGE_ROOT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in dedicated_store.env.items():
        monkeypatch.setenv(key, value)
    return dict(os.environ)
