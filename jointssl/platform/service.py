"""The thin base of every platform service: hooks the stack calls in order, nothing else.

``check_installed`` → ``prepare`` (one-time set-up, e.g. initdb) → ``command``/``environment`` (how
to start it) → ``healthy`` (polled) → ``after_start`` (databases, migrations). ``client_env`` is
what a job needs to reach it. Each service lives in its own module and overrides only what it needs.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from jointssl.errors import JointsslError
from jointssl.platform.credentials import Credentials
from jointssl.platform.process import ManagedProcess, executable
from jointssl.platform.settings import PlatformSettings

PLATFORM_EXTRA_HINT = "install the platform extra: pip install -e '.[platform]' (or run scripts/setup.sh)"


class Service:
    name: str = ""
    depends_on: tuple[str, ...] = ()
    start_timeout: float = 60.0  # seconds until healthy, measured on 2 cores with slack
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 20.0

    def __init__(self, settings: PlatformSettings, creds: Credentials | None):
        self.settings = settings
        self._creds = creds
        self.process = ManagedProcess(self.name, settings.home)

    @property
    def creds(self) -> Credentials:
        if self._creds is None:
            raise JointsslError(
                f"no credentials in {self.settings.home}", hint="run 'jointssl platform up' first"
            )
        return self._creds

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir(self.name)

    # --- hooks -----------------------------------------------------------------------------------
    def ports(self) -> dict[str, int]:
        """``{what: port}`` this service listens on, checked free before it starts."""
        return {}

    def check_installed(self) -> None:
        """Raise :class:`JointsslError` naming the missing binary and how to install it."""

    def prepare(self) -> None:
        """One-time set-up before the first start (idempotent)."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def user(self) -> str | None:
        return None

    def cwd(self) -> Path:
        """Where the server runs: its data dir, so no stray ``.env`` or relative path surprises it."""
        return self.data_dir

    def healthy(self) -> bool:
        raise NotImplementedError

    def after_start(self) -> None:
        """Set-up that needs the server up (idempotent: runs again when ``up`` reuses it)."""

    def url(self) -> str:
        raise NotImplementedError

    def client_env(self) -> dict[str, str]:
        return {}

    # --- shared helpers ----------------------------------------------------------------------------
    def require(self, binary: str, hint: str = PLATFORM_EXTRA_HINT) -> str:
        path = executable(binary)
        if path is None:
            raise JointsslError(f"{self.name} needs the '{binary}' executable, which is not installed", hint=hint)
        return path
