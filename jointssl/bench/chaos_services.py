"""The chaos run's restartable services: SeaweedFS (S3) and the MLflow tracking server, started by the
platform's own code (:func:`jointssl.platform.stack.up`, MLflow with its PostgreSQL) in a throw-away home
under /tmp on free loopback ports, stopped abruptly by PID (SIGKILL) and started again on the same ports
and data directories; everything stopped by PID at the end.

:data:`SERVICE_RESTARTS` is the fault kinds this module applies: the service killed and how long it stays
down before the restart.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from jointssl.errors import JointsslError

if TYPE_CHECKING:
    from jointssl.platform.service import Service
    from jointssl.platform.settings import PlatformSettings

SERVICE_RESTARTS: dict[str, tuple[str, float]] = {"s3_restart": ("seaweedfs", 3.0), "mlflow_restart": ("mlflow", 3.0)}
"""Restart fault kinds: (platform service SIGKILLed, seconds down before it is started again)."""
SERVICES = ("seaweedfs", "mlflow")
"""What the chaos run starts (MLflow brings its PostgreSQL backend store)."""
PORTS_FREE_S = 15.0
"""A killed server's listening sockets may linger a moment: how long a restart waits for its ports."""


class ChaosPlatform:
    """SeaweedFS + PostgreSQL + MLflow of the chaos run's own (see the module docstring)."""

    def __init__(self, settings: PlatformSettings):
        self.settings = settings

    def service(self, name: str) -> Service:
        from jointssl.platform import credentials, stack

        return stack.build_services(self.settings, credentials.load(self.settings.home))[name]

    def env(self) -> dict[str, str]:
        """What a job needs: AWS_ENDPOINT_URL and keys, MLFLOW_TRACKING_URI."""
        return {**self.service("seaweedfs").client_env(), **self.service("mlflow").client_env()}

    def restart(self, name: str, down_s: float) -> tuple[float, float]:
        """SIGKILL ``name`` (and its helpers), wait ``down_s``, start it again on the same ports and data:
        (when it was killed, when it was healthy again), wall clock (time.time())."""
        from jointssl.platform import stack

        left = self.service(name).process.stop(signal.SIGKILL, timeout=10.0)
        killed = time.time()
        if left:
            raise JointsslError(f"{name} processes survived SIGKILL: {left}")
        time.sleep(down_s)
        deadline = time.monotonic() + PORTS_FREE_S
        while True:
            try:
                stack.up(self.settings, only=(name,))
                return killed, time.time()
            except JointsslError as err:
                if "already in use" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


@contextmanager
def chaos_platform() -> Iterator[ChaosPlatform]:
    """Start :data:`SERVICES` in a new home; on exit stop every recorded PID and remove the home."""
    from jointssl.platform import stack
    from jointssl.platform.settings import PlatformSettings, free_ports

    home = Path(tempfile.mkdtemp(prefix="jointssl-chaos-platform-", dir="/tmp"))
    home.chmod(0o755)  # the postgres OS user enters it
    settings = PlatformSettings(home=home, ports=free_ports())
    try:
        stack.up(settings, only=SERVICES)
        yield ChaosPlatform(settings)
    finally:
        left = stack.down(home)
        shutil.rmtree(home, ignore_errors=True)
        if left:
            raise JointsslError(f"chaos platform processes left running: PIDs {left}")


