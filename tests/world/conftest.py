"""A tiny world built once per test session (profile 'test', a handful of sites) in a temp dir."""

from __future__ import annotations

import pytest

from jointssl.config import load_job_config
from jointssl.world.profile import load_profile
from jointssl.world.publish import generate_world


def build_world(out: str, sites: int = 18, labelled_per_class: int = 2, seed: int = 0):
    config = load_job_config(None, ["--world.profile", "test", "--world.out", out, "--run.seed", str(seed)])
    profile = load_profile("test").replace(sites=sites, labelled_per_class=labelled_per_class)
    return generate_world(config, profile, progress=False)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("world"))
    return build_world(out)
