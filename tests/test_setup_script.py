"""scripts/setup.sh decides what to install from its stamp: ``make demo`` (--demo) installs only jointssl's own
dependencies at the lock's versions, ``make test`` the whole pinned set, a whole set serves the demo, and a
changed lock file re-installs. The venv's python here is a stub that records each call, so the script's
decisions are checked without pip or a network; --no-system keeps apt out of it."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "setup.sh"

STUB = """#!/bin/sh
echo "$*" >> "{log}"
case "$*" in --version) echo "Python 3.11.7" ;; esac
exit 0
"""


def fake_venv(tmp_path: Path) -> tuple[Path, Path]:
    venv, log = tmp_path / "venv", tmp_path / "calls.log"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(STUB.format(log=log))
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return venv, log


def setup(venv: Path, log: Path, *args: str) -> list[str]:
    """Run setup.sh against ``venv``; the pip commands the stub was given."""
    log.write_text("")
    env = {**os.environ, "JOINTSSL_VENV": str(venv)}
    done = subprocess.run(["bash", str(SCRIPT), "--no-system", *args], capture_output=True, text=True, env=env,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr
    return [line for line in log.read_text().splitlines() if line.startswith("-m pip install")]


def stamp(venv: Path) -> str:
    return (venv / ".jointssl-lock.sha256").read_text().split()[-1]


def test_the_demo_installs_jointssl_s_own_dependencies_and_a_full_set_up_adds_the_rest(tmp_path: Path) -> None:
    venv, log = fake_venv(tmp_path)

    demo = setup(venv, log, "--demo")
    assert any("-c requirements/lock-py311-linux.txt -e ." in call for call in demo), demo
    assert not any("-r requirements/lock-py311-linux.txt" in call for call in demo), demo
    assert stamp(venv) == "demo"
    assert not any("-c requirements" in call or "-r requirements" in call for call in setup(venv, log, "--demo"))

    full = setup(venv, log)
    assert any("-r requirements/lock-py311-linux.txt" in call for call in full), full
    assert stamp(venv) == "full"
    assert not any("requirements/" in call for call in setup(venv, log, "--demo")), "a full set serves the demo"
    assert not any("requirements/" in call for call in setup(venv, log))


def test_a_changed_lock_or_an_old_stamp(tmp_path: Path) -> None:
    venv, log = fake_venv(tmp_path)
    setup(venv, log)
    digest = (venv / ".jointssl-lock.sha256").read_text().split()[0]

    (venv / ".jointssl-lock.sha256").write_text(digest + "\n")  # an earlier script's bare hash: the full set
    assert not any("requirements/" in call for call in setup(venv, log))

    (venv / ".jointssl-lock.sha256").write_text("0" * 64 + " full\n")  # installed from another lock file
    demo = setup(venv, log, "--demo")
    assert any("-c requirements/lock-py311-linux.txt -e ." in call for call in demo), demo
    assert stamp(venv) == "demo"
