"""Each world dialect through the platform's real pgstac STAC API: published as Planetary Computer or Earth
Search publish the scenes, indexed and chipped with the preset of the same name, and classified by 'jointssl
infer' with ONE classifier trained once on the world dialect, which gives every dialect the same probabilities.

Index + chips + infer (no pre-training or evaluation here: the world dialect runs those in the other
end-to-end tests, and a dialect only changes how the same pixels are published). The COGs stay on local
disk; the catalog goes into pgstac and is deleted again after each dialect (item ids repeat across dialects).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest

from jointssl.config import load_job_config
from jointssl.data.dataset import ChipBatchLoader
from jointssl.data.index_job import run_index
from jointssl.data.pipeline import load_site_table, modalities_of
from jointssl.labels import FACILITY_CLASSES
from jointssl.world.publish import generate_world, load_into_pgstac
from tests.conftest import require_ray

pytestmark = [pytest.mark.services, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
SITES = 12
MODEL = "dialect-classifier"
"""Registered under its own name: the platform's 'methane-classifier' belongs to the other tests."""
ALL = "[naip, s2, s1]"
CLASSIFIED = "[s2]"
"""The classifier reads Sentinel-2 only: the one sensor every dialect serves (Earth Search has GRD, not RTC,
and its NAIP surveys are finer than the world's), so its probabilities must agree across all three."""


def _config(root: Path, dialect: str, *extra: str):
    return load_job_config("configs/test.yaml", [
        "--storage.root", str(root), "--world.sites", str(SITES), "--world.dialect", dialect,
        "--index.preset", dialect, "--index.href_modifier", "none", "--chips.require", "[]", *extra])


@pytest.fixture(scope="module")
def trained(platform, tmp_path_factory) -> str:
    """The classifier, fitted once on the world dialect (local world, embedded STAC) and registered in the
    platform's MLflow; returns its models:/ URI."""
    from tests.infer.classifier import build_classifier, register

    root = tmp_path_factory.mktemp("dialect-train")
    config = _config(root, "world", "--index.modalities", CLASSIFIED)
    generate_world(config, progress=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("JOINTSSL_STAC_URL", raising=False)  # the world's own catalog, served here (rustac)
        run_index(config)
    model = build_classifier(load_site_table(config), modalities_of(config), steps=100)
    register(model, platform.env()["MLFLOW_TRACKING_URI"], name=MODEL)
    return f"models:/{MODEL}@champion"


@pytest.fixture(scope="module")
def probabilities() -> dict[str, np.ndarray]:
    """Dialect -> [sites K] probabilities of the infer run, filled as the dialects run (in order)."""
    return {}


def _delete(dsn: str, items: dict[str, list[dict]]) -> None:
    from pypgstac.db import PgstacDB

    with PgstacDB(dsn=dsn) as db:
        for collection, found in items.items():
            for item in found:
                db.query_one("SELECT delete_item(%s, %s)", [item["id"], collection])


@pytest.mark.parametrize("dialect", ["world", "planetary-computer", "earth-search"])
def test_dialect_through_pgstac_index_chips_infer(platform, trained, probabilities, dialect, tmp_path, monkeypatch):
    require_ray()
    env = platform.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = _config(tmp_path, dialect, "--index.modalities", ALL)
    manifest = generate_world(config, progress=False)
    loaded = {cid: [json.loads(line) for line in Path(url).read_text().splitlines()]
              for cid, url in manifest.item_files.items()}
    assert load_into_pgstac(manifest.url, env["JOINTSSL_PGSTAC_DSN"]) == {c: len(v) for c, v in loaded.items()}
    try:
        summary = run_index(config)
        assert summary["stac_url"] == env["JOINTSSL_STAC_URL"]  # the pgstac API, not the embedded one
        s1 = summary["missing"].get("s1", {})
        if dialect == "earth-search":  # GRD: refused at the index, by name (a site at its edge: partial_cover)
            assert sum(s1.values()) == SITES and set(s1) <= {"not_terrain_corrected", "partial_cover"}
            assert s1["not_terrain_corrected"] >= SITES // 2
        else:
            assert summary["radiometry"]["s1"] and sum(s1.values()) < SITES
        batch = ChipBatchLoader(modalities_of(config))(load_site_table(config))
        assert batch["s2_present"].sum() >= SITES // 2 and batch["naip_present"].sum() >= SITES // 2

        out = tmp_path / "inference"
        done = subprocess.run(
            [sys.executable, "-m", "jointssl", "infer", "--config", "configs/test.yaml",
             "--storage.root", str(tmp_path),
             "--world.sites", str(SITES), "--index.preset", dialect, "--index.href_modifier", "none",
             "--infer.model", trained, "--infer.modalities", CLASSIFIED, "--infer.out", str(out),
             "--infer.sites", str(tmp_path / "world" / "sites.parquet"),
             "--ray.address", env["JOINTSSL_RAY_GCS_ADDRESS"]],
            check=False, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
            timeout=400)
        assert done.returncode == 0, done.stderr[-4000:]
        result = json.loads(done.stdout[done.stdout.index("{"):])
        tiles = gpd.read_parquet(result["out"]).set_index("tile_id").sort_index()
    finally:
        _delete(env["JOINTSSL_PGSTAC_DSN"], loaded)
    assert len(tiles) == SITES and (tiles["s2_item_id"].notna().sum() >= SITES // 2)
    probabilities[dialect] = tiles[[f"prob_{c}" for c in FACILITY_CLASSES]].to_numpy()
    for other, seen in probabilities.items():  # every dialect run so far: the same answers
        np.testing.assert_allclose(probabilities[dialect], seen, rtol=0, atol=1e-4, err_msg=f"{dialect} vs {other}")
