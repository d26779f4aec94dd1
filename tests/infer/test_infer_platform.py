"""'jointssl infer' against the platform's real services: the world in SeaweedFS S3 and pgstac, the
classifier in the MLflow server's registry, actors on the platform's Ray head, predictions written to
S3 as GeoParquet that geopandas reads back, with provenance, matching the world's ground truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import pytest

from jointssl import storage
from jointssl.cli import main
from tests.conftest import require_ray
from tests.infer.classifier import register
from tests.infer.conftest import US
from tests.infer.test_infer_ray import detections_near_sites, ground_truth, scores

pytestmark = [pytest.mark.services, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
ROOT = "s3://jointssl/test-infer"


def test_infer_on_the_platform_writes_geoparquet_to_s3(platform, infer_world, monkeypatch):
    require_ray()
    env = platform.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    common = ["--config", "configs/test.yaml", "--storage.root", ROOT]
    # the same seeded world as the local one (same sites, same pixels), now in S3 and pgstac
    started = time.perf_counter()
    assert main(["world", *common, "--no-progress", "--load-pgstac", env["JOINTSSL_PGSTAC_DSN"]]) == 0
    version = register(infer_world.model, env["MLFLOW_TRACKING_URI"])
    print(f"world in S3 + pgstac and classifier registered in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()

    done = subprocess.run(
        [sys.executable, "-m", "jointssl", "infer", *common, "--infer.bbox", json.dumps(US),
         "--ray.address", env["JOINTSSL_RAY_GCS_ADDRESS"]],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stderr[-4000:]
    print(f"jointssl infer process: {time.perf_counter() - started:.0f} s")
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    print(f"platform infer: {summary['tiles']} tiles, stream {summary['seconds']} s; {summary['compute']}")
    assert summary["compute"]["ray"] == env["JOINTSSL_RAY_GCS_ADDRESS"]  # actors ran on the platform's head
    assert summary["out"].startswith(f"{ROOT}/inference/test/run-")
    assert summary["model"]["uri"] == f"models:/methane-classifier/{version}"

    fs, path = storage.arrow_filesystem(summary["out"])
    tiles = gpd.read_parquet(path, filesystem=fs)
    assert len(tiles) == summary["tiles"] > 40 and not tiles["tile_id"].duplicated().any()
    assert tiles.crs.to_epsg() == 4326 and (tiles["run_id"] == summary["run_id"]).all()
    ok = tiles[tiles["status"] == "ok"]
    assert ok["s2_item_id"].notna().sum() > 0.5 * len(ok) and ok["s2_datetime"].notna().sum() > 0.5 * len(ok)
    precision, recall = scores(detections_near_sites(tiles, infer_world), ground_truth(infer_world))
    print(f"platform grid run vs ground truth: precision {precision:.2f} recall {recall:.2f}")
    assert recall >= 0.8 and precision >= 0.45

    import mlflow

    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    logged = {Path(a.path).name for a in client.list_artifacts(summary["run_id"], f"inference/{summary['run']}")}
    assert logged == {"summary.json", "map.png"}
    s3, _ = storage.filesystem(summary["out"])
    assert s3.exists(f"{summary['out']}/_map.png") and s3.exists(f"{summary['out']}/_summary.json")
