"""Headless Chromium for tests that check web UIs (MLflow, evaluation pages) as a user would see them.

JavaScript apps such as MLflow's UI render after load, so pages are read with a virtual-time budget
(``--virtual-time-budget``: Chromium fast-forwards timers and waits for network until the budget is
spent), then the rendered DOM is dumped (``--dump-dom``) or a screenshot taken. Every call uses a
fresh throw-away profile and no network beyond what the page asks for (flags from PLATFORM.md).

    from tests.support.browser import require_chromium, dump_dom
    dom = dump_dom(f"{mlflow_url}/#/experiments/{experiment_id}/runs")

``scripts/setup.sh`` installs Chromium (Debian package ``chromium``) when run as root; elsewhere the
tests that need it skip, saying how to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

EXECUTABLES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio", "--hide-scrollbars")


def find_chromium() -> str | None:
    """Path of a Chromium (or Chrome) executable, or None."""
    override = os.environ.get("JOINTSSL_CHROMIUM")
    if override:
        return override if shutil.which(override) else None
    return next((path for path in map(shutil.which, EXECUTABLES) if path), None)


def require_chromium() -> str:
    """The executable; skips the test when there is none and we cannot have installed it (not root),
    fails it when setup should have installed it (root: scripts/setup.sh installs the package)."""
    path = find_chromium()
    if path is not None:
        return path
    how = "install it with 'apt-get install --no-install-recommends chromium' (scripts/setup.sh does, as root)"
    if os.geteuid() != 0:
        pytest.skip(f"headless Chromium is not installed and this user is not root: {how}")
    pytest.fail(f"headless Chromium is not installed: run scripts/setup.sh or {how}", pytrace=False)


def _run(args: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="jointssl-chromium-") as profile:
        done = subprocess.run([require_chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited with {done.returncode}: {done.stderr[-2000:]}")
    return done


def dump_dom(url: str, budget_ms: int = 10000, timeout_s: float = 120, window: tuple[int, int] = (1400, 900)) -> str:
    """The DOM of ``url`` after ``budget_ms`` of virtual time (scripts run, XHRs answered), as HTML."""
    return _run([f"--virtual-time-budget={budget_ms}", f"--window-size={window[0]},{window[1]}", "--dump-dom", url],
                timeout_s).stdout


def screenshot(url: str, path: str | Path, budget_ms: int = 10000, timeout_s: float = 120,
               window: tuple[int, int] = (1400, 900)) -> Path:
    """A PNG of ``url`` as rendered after ``budget_ms`` of virtual time, written to ``path``."""
    path = Path(path).absolute()
    _run([f"--virtual-time-budget={budget_ms}", f"--window-size={window[0]},{window[1]}", f"--screenshot={path}", url],
         timeout_s)
    if not path.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {path}")
    return path
