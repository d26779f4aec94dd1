"""Typed configuration: dataclass schemas (``schema``), YAML + flag loading and validation (``load``)."""

from __future__ import annotations

import os
from pathlib import Path

from jointssl.config.load import ConfigError, flatten, load_config, parse_overrides, to_dict
from jointssl.config.schema import JobConfig

__all__ = ["ConfigError", "JobConfig", "flatten", "load_config", "load_job_config", "parse_overrides", "to_dict"]


def load_job_config(path: str | Path | None = None, overrides: list[str] | None = None) -> JobConfig:
    """Load a job config; ``JOINTSSL_STORAGE_ROOT`` fills ``storage.root`` when neither file nor flags set it."""
    overrides = list(overrides or [])
    env_root = os.environ.get("JOINTSSL_STORAGE_ROOT")
    if env_root and not any(o.split("=")[0] == "--storage.root" for o in overrides):
        from jointssl.config.load import read_yaml

        in_file = path is not None and "root" in (read_yaml(Path(path)).get("storage") or {})
        if not in_file:
            overrides = ["--storage.root", env_root, *overrides]
    return load_config(JobConfig, path, overrides)
