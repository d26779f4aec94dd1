"""One tiny world and its co-location index for every pre-training test of the session (local disk).

Generating the test world costs 10-45 s on 2 cores; the end-to-end tests only read it, each with its
own storage root for checkpoints and tracking (``--world.out`` / ``--index.out`` point here).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class TestWorld:
    world: str
    index: str

    def args(self, with_index: bool = True) -> list[str]:
        """Command-line overrides that read this world (and its index)."""
        return ["--world.out", self.world, *(["--index.out", self.index] if with_index else [])]


@pytest.fixture(scope="session")
def test_world(tmp_path_factory) -> TestWorld:
    from jointssl.cli import main

    root = tmp_path_factory.mktemp("pretrain-world")
    world = TestWorld(str(root / "world"), str(root / "index"))
    with pytest.MonkeyPatch.context() as patch:
        for key in ("JOINTSSL_STAC_URL", "JOINTSSL_PGSTAC_DSN", "JOINTSSL_STORAGE_ROOT", "AWS_ENDPOINT_URL"):
            patch.delenv(key, raising=False)
        common = ["--config", "configs/test.yaml", "--storage.root", str(root)]
        assert main(["world", *common, *world.args(with_index=False)]) == 0
        assert main(["index", *common, *world.args()]) == 0
    return world
