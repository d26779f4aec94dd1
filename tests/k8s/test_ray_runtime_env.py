"""infra/ray: the runtime_env files for 'ray job submit --runtime-env' are valid for the pinned Ray, carry
no credentials, and the working directory they upload is the code and configs, without .git, virtual
environments or run state (checked with Ray's own traversal of the directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.conftest import REPO

RUNTIME_ENVS = ("infra/ray/runtime-env.yaml", "infra/ray/runtime-env-pip.yaml")
NEVER_UPLOADED = (".git/", ".venv/", ".jointssl/", "mlruns/", ".pytest_cache/", "tests/", "docs/")


def runtime_env(path: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / path).read_text())


@pytest.mark.parametrize("path", RUNTIME_ENVS)
def test_runtime_envs_are_valid_for_ray(path, monkeypatch):
    from ray.runtime_env import RuntimeEnv

    monkeypatch.chdir(REPO)  # 'ray job submit' runs from the repository root; the pip path is relative to it
    parsed = RuntimeEnv(**runtime_env(path))
    assert parsed["excludes"] == runtime_env(RUNTIME_ENVS[0])["excludes"]


def test_the_pip_runtime_env_installs_the_locked_set(monkeypatch):
    from ray.runtime_env import RuntimeEnv

    monkeypatch.chdir(REPO)
    packages = RuntimeEnv(**runtime_env("infra/ray/runtime-env-pip.yaml"))["pip"]["packages"]
    locked = [line for line in (REPO / "requirements/lock-py311-linux.txt").read_text().splitlines()
              if line and not line.startswith("#")]
    assert {"torch==2.14.1", "timm==1.0.31", "mlflow==3.17.2"} <= set(packages)
    assert set(locked) - set(packages) <= {"ray==2.60.0"}, "Ray drops only itself (the cluster provides it)"


@pytest.mark.parametrize("path", RUNTIME_ENVS)
def test_runtime_envs_carry_no_services_or_credentials(path):
    env = runtime_env(path)
    assert set(env) <= {"excludes", "pip", "config", "env_vars"}
    assert "://" not in (REPO / path).read_text().split("\nexcludes:")[1]
    assert not env.get("env_vars"), "services and credentials come from the cluster's environment"


def test_the_uploaded_working_directory_is_code_without_state():
    from ray._private.runtime_env.packaging import _dir_travel, _get_excludes

    files: list[Path] = []
    excludes = [_get_excludes(REPO, runtime_env(RUNTIME_ENVS[0])["excludes"])]
    _dir_travel(REPO, excludes, lambda p: files.append(p) if p.is_file() else None, include_gitignore=True)
    uploaded = {str(p.relative_to(REPO)) for p in files}
    assert {"jobs/pretrain.py", "configs/k8s-infer.yaml", "configs/k8s-pretrain.yaml", "jointssl/cli.py",
            "pyproject.toml"} <= uploaded
    leaked = sorted(p for p in uploaded if p.startswith(NEVER_UPLOADED) or "__pycache__" in p)
    assert not leaked, leaked[:10]
    assert sum(p.stat().st_size for p in files) < 8 * 2**20, "a job upload is code and configs: a few MiB"
