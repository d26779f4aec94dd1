"""Each catalog dialect through the whole platform, by configuration alone: ``jointssl demo`` with
``--world.dialect D --index.preset D`` publishes the world as Planetary Computer or Earth Search publish it,
loads the catalog into the real pgstac STAC API, indexes through that API onto the SeaweedFS S3, pre-trains
on the platform's Ray head (tracked and registered in the MLflow server), evaluates, and classifies the
world's sites. The two dialects must agree: the same chips, and the same probabilities.

Tiny on purpose (CI budget): a 21-site world, one epoch of pre-training on one worker, evaluation reduced to
one linear probe (no baselines, no fine-tuning, one label fraction, one fusion, one L2 penalty, no
bootstrap). The world's COGs stay on local disk (writing them to SeaweedFS costs more than the rest; tests/data
covers chips read back from S3); the catalog goes into pgstac and is deleted again after each dialect (item
ids repeat across dialects).

The pipeline reads NAIP and Sentinel-2, the sensors both catalogs serve (Earth Search has GRD, not RTC). A
second index through pgstac, of Sentinel-1 and Sentinel-2 with two broken footprints added, checks before the
catalog goes that GRD is refused by name and a footprint with nothing left is a counted skip naming the item
(rustac, the embedded API, refuses to load such footprints, so only pgstac can serve them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jointssl import storage
from jointssl.config import load_job_config
from jointssl.config.schema import index_url
from jointssl.data.dataset import ChipBatchLoader
from jointssl.data.index_job import run_index
from jointssl.data.pipeline import load_site_table, modalities_of
from jointssl.labels import FACILITY_CLASSES
from tests.conftest import require_ray

pytestmark = [pytest.mark.services, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
DIALECTS = ("planetary-computer", "earth-search")
SITES = 21
"""3 labelled sites per class (one per split: evaluation needs each class in train, val and test)."""
MODALITIES = "[naip, s2]"
TINY = ["--model.backbone", "resnet10t", "--model.shared_trunk", "true", "--model.small_input_stem", "false",
        "--model.embed_dim", "16", "--model.proj_hidden_dim", "16", "--model.proj_dim", "8",
        "--pretrain.batch_size", "4", "--pretrain.epochs", "1", "--pretrain.num_workers", "1",
        "--pretrain.checkpoint_every", "100",
        "--evaluate.random_init", "false", "--evaluate.supervised", "false", "--evaluate.finetune", "false",
        "--evaluate.per_modality", "false", "--evaluate.label_fractions", "[1.0]", "--evaluate.fusions", "[concat]",
        "--evaluate.probe_l2", "[0.01]", "--evaluate.probe_epochs", "50", "--evaluate.bootstrap", "0",
        "--ray.num_cpus", "2"]
"""The smallest pipeline the config allows: one pre-training step or two, one linear probe."""
PROB_ATOL = 1e-3
"""Chips of the two dialects agree to 1e-4 (float32 scale/offset arithmetic in a different order:
tests/world/test_dialects.py); one epoch of pre-training and a 50-step probe on those chips move the
probabilities by far less than this, while a wrong offset or band order moves them by 0.1 or more."""


@dataclass
class DialectRun:
    config: object  # jointssl.config.JobConfig, as the subprocess read it
    summary: dict
    index: dict
    tiles: pd.DataFrame
    batch: dict[str, np.ndarray]


@pytest.fixture(scope="module")
def runs() -> dict[str, DialectRun]:
    """Dialect -> its run, filled as the dialects run (in order)."""
    return {}


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"s3://jointssl/tests/dialects-{uuid.uuid4().hex[:8]}"


def _args(prefix: str, world: Path, dialect: str) -> list[str]:
    tag = f"{dialect}-{prefix.rsplit('-', 1)[1]}"
    return ["--storage.root", f"{prefix}/{dialect}", "--world.out", str(world), "--world.sites", str(SITES),
            "--world.dialect", dialect, "--index.preset", dialect, "--index.href_modifier", "none",
            "--index.modalities", MODALITIES, "--chips.require", "[]", "--run.name", f"dialect-{dialect}",
            "--pretrain.register_model", f"encoder-{tag}", "--evaluate.encoder", f"models:/encoder-{tag}@current",
            "--evaluate.register_model", f"classifier-{tag}", "--infer.sites", str(world / "sites.parquet"), *TINY]


def _demo(args: list[str], env: dict[str, str]) -> dict:
    """``jointssl demo`` in its own process (a process that joined the token-authenticated Ray head keeps that
    auth mode, which would break later tests that start a local Ray in pytest); its printed summary."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_", "MLFLOW_", "JOINTSSL_STAC"))}
    done = subprocess.run([sys.executable, "-m", "jointssl", "demo", "--config", "configs/test.yaml", *args],
                          env={**clean, **env, "PYTHONPATH": str(REPO)}, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    summary: dict = json.loads(done.stdout[done.stdout.rindex("\n{\n") + 1:])
    sys.__stdout__.write(f"\n[{args[args.index('--world.dialect') + 1]}] stage seconds: {summary['seconds']}\n")
    return summary


def _read_json(url: str) -> dict:
    fs, path = storage.filesystem(url)
    return json.loads(fs.cat_file(path))


def _read_tiles(url: str) -> pd.DataFrame:
    import pyarrow.dataset as ds

    fs, path = storage.arrow_filesystem(url)
    return ds.dataset(path, filesystem=fs, format="parquet").to_table().to_pandas()


def _catalog(world: Path) -> list[dict]:
    return [json.loads(line) for path in sorted((world / "stac" / "items").glob("*.ndjson"))
            for line in path.read_text().splitlines()]


def _broken_footprints(world: Path) -> list[dict]:
    """Copies of one published Sentinel-2 item with footprints as catalogs publish them: a MultiPolygon whose
    first part is empty (Planetary Computer; repaired, the item usable) and a polygon of no area (nothing left:
    a counted skip naming the item)."""
    item = next(i for i in _catalog(world) if i["collection"] == "sentinel-2-l2a")
    rings = item["geometry"]["coordinates"]
    (x0, y0), (x1, y1) = rings[0][0], rings[0][2]  # opposite corners: a diagonal through the site
    return [{**item, "id": f"{item['id']}-emptyfirst",
             "geometry": {"type": "MultiPolygon", "coordinates": [[], rings]}},
            {**item, "id": f"{item['id']}-noarea",
             "geometry": {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y1], [x0, y0], [x0, y0]]]}}]


def _delete_catalog(dsn: str, items: list[dict]) -> None:
    from pypgstac.db import PgstacDB

    with PgstacDB(dsn=dsn) as db:
        for item in items:
            db.query_one("SELECT delete_item(%s, %s)", [item["id"], item["collection"]])


def _index_through_pgstac(args: list[str], root: Path, dsn: str, extra: list[dict]) -> dict:
    """The index of Sentinel-1 and Sentinel-2 through the pgstac API with ``extra`` items loaded as well (written
    locally: the run's own index stays as it is)."""
    from pypgstac.db import PgstacDB
    from pypgstac.load import Loader, Methods

    with PgstacDB(dsn=dsn) as db:
        Loader(db=db).load_items(iter(extra), insert_mode=Methods.upsert)
    config = load_job_config("configs/test.yaml",
                             [*args, "--storage.root", str(root), "--index.modalities", "[s1, s2]"])
    return run_index(config)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_dialect_index_pretrain_evaluate_infer_through_the_platform(platform, runs, prefix, dialect,
                                                                     tmp_path, monkeypatch):
    require_ray()
    env = platform.env()
    world = tmp_path / "world"
    args = _args(prefix, world, dialect)
    dsn = env["JOINTSSL_PGSTAC_DSN"]
    broken: list[dict] = []
    try:
        summary = _demo(args, env)
        broken = _broken_footprints(world)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        again = _index_through_pgstac(args, tmp_path / "again", dsn, broken)
    finally:
        _delete_catalog(dsn, _catalog(world) + broken)
    config = load_job_config("configs/test.yaml", args)
    index = _read_json(storage.join(index_url(config), "summary.json"))
    assert index["stac_url"] == env["JOINTSSL_STAC_URL"]  # the pgstac API, not the world's embedded one
    run = DialectRun(config, summary, index, _read_tiles(summary["infer"]["out"]),
                     ChipBatchLoader(modalities_of(config))(load_site_table(config)))
    runs[dialect] = run

    # 1. index: each item's radiometry rule, as this catalog publishes Sentinel-2; S1 as this catalog serves it
    expected_s2 = {"planetary-computer": {"s2:processing_baseline<04.00", "s2:processing_baseline>=04.00"},
                   "earth-search": {"raster:bands"}}[dialect]
    assert set(index["radiometry"]["s2"]) == expected_s2, index["radiometry"]
    if dialect == "earth-search":  # GRD: refused at the index, by name, with the collection that would serve
        assert set(again["missing"]["s1"]) <= {"not_terrain_corrected", "partial_cover"}
        assert again["missing"]["s1"]["not_terrain_corrected"] >= SITES // 2
        assert "sentinel-1-rtc" in again["refusals"]["s1"]["not_terrain_corrected"]
    else:
        assert again["radiometry"]["s1"] and sum(again["missing"].get("s1", {}).values()) < SITES // 2
    # a footprint with nothing left is a counted skip naming the item; the repaired one is used like any other
    assert again["bad_footprints"] == {"s2": {"items": 1, "ids": [broken[1]["id"]]}}
    assert again["missing"].get("s2", {}) == index["missing"].get("s2", {})
    assert run.batch["s2_present"].sum() >= SITES // 2 and run.batch["naip_present"].sum() >= SITES // 2

    # 2. pre-training: a run on the MLflow server and its encoder registered as @current
    import mlflow

    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    trained = summary["pretrain"]
    assert trained["steps"] >= 1 and trained["epochs"] == 1
    assert client.get_model_version_by_alias(config.pretrain.register_model, "current").run_id == \
        trained["mlflow_run_id"]
    # 3. evaluation: a test AUPRC and a registered classifier on the same server
    auprc = summary["evaluate"]["best_test_macro_auprc"]
    assert 0.0 <= auprc <= 1.0 and summary["evaluate"]["registered"]
    assert client.search_model_versions(f"name = '{config.evaluate.register_model}'")
    # 4. inference: every site classified, exactly once, on S3
    assert summary["infer"]["out"].startswith(f"{prefix}/{dialect}/inference/")
    sites = pd.read_parquet(world / "sites.parquet")
    assert run.tiles["tile_id"].is_unique and len(run.tiles) == len(sites) == SITES
    probs = run.tiles[[f"prob_{c}" for c in FACILITY_CLASSES]].to_numpy()
    assert np.isfinite(probs).all() and ((probs >= 0) & (probs <= 1)).all()


def test_dialects_agree_on_chips_and_probabilities(runs):
    """The dialects publish the same scenes: the same chips through each preset, so the same encoder, probe
    and probabilities (each dialect trained its own, with the same seeds)."""
    missing = [d for d in DIALECTS if d not in runs]
    if missing:
        pytest.skip(f"the pipeline did not run for {missing}")
    pc, es = (runs[d] for d in DIALECTS)
    for name in ("naip", "s2"):
        np.testing.assert_array_equal(pc.batch[f"{name}_present"], es.batch[f"{name}_present"])
        np.testing.assert_allclose(es.batch[name], pc.batch[name], rtol=0, atol=1e-4, err_msg=name)
    columns = [f"prob_{c}" for c in FACILITY_CLASSES]
    got, expected = (r.tiles.set_index("tile_id").sort_index()[columns].to_numpy() for r in (es, pc))
    assert np.ptp(expected, axis=0).max() > 1e-3  # the sites get different answers: a comparison that can fail
    np.testing.assert_allclose(got, expected, rtol=0, atol=PROB_ATOL)
