"""'jointssl infer' end to end on a local Ray (the embedded default: world on disk, rustac STAC API, sqlite
MLflow): GeoParquet with provenance that matches the world's ground truth, candidate sites that
reproduce the evaluation's predictions exactly, a killed run that resumes with every tile exactly once,
and incremental runs that process only tiles with new imagery."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import shape

from jointssl.cli import main
from jointssl.data.dataset import ChipBatchLoader
from jointssl.infer.tiles import chip_boxes, coverage
from jointssl.labels import FACILITY_CLASSES
from jointssl.models.multimodal import ModalityInput
from jointssl.train.loop import to_tensors
from tests.conftest import require_ray
from tests.infer.conftest import US, append_new_acquisitions

pytestmark = [pytest.mark.services, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def infer(world, out: Path, *extra: str) -> tuple[int, dict]:
    """Run 'jointssl infer' in this process (on the module's Ray); (exit code, printed summary)."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["infer", *world.args("--infer.out", str(out), "--ray.num_cpus", "2", *extra)])
    text = buffer.getvalue()
    return code, (json.loads(text[text.index("{"):]) if code == 0 else {})


def scores(predicted: dict[str, set[str]], truth: dict[str, set[str]]) -> tuple[float, float]:
    """Micro precision and recall over (site, class) pairs."""
    tp = sum(len(predicted.get(s, set()) & t) for s, t in truth.items())
    fp = sum(len(predicted.get(s, set()) - t) for s, t in truth.items())
    fn = sum(len(t - predicted.get(s, set())) for s, t in truth.items())
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1)


def ground_truth(world) -> dict[str, set[str]]:
    labelled = world.sites[world.sites["labelled"]]
    return {s: set(labels) for s, labels in zip(labelled["site_id"], labelled["labels"])}


def detections_near_sites(tiles: gpd.GeoDataFrame, world, radius_m: float = 300.0) -> dict[str, set[str]]:
    """Each site's classes: detections of the tiles whose centre lies within radius_m of it."""
    out: dict[str, set[str]] = {}
    for site in world.sites.itertuples():
        d = np.hypot((tiles["lon"] - site.geometry.x) * 111_320 * np.cos(np.radians(site.geometry.y)),
                     (tiles["lat"] - site.geometry.y) * 111_320)
        out[site.site_id] = {c for row in tiles.loc[d < radius_m, "detected"] for c in row}
    return out


def descendants(root: int) -> list[int]:
    """PIDs of ``root``'s process tree (from /proc), ``root`` first."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"  # a zombie is dead, waiting for init to reap it


@pytest.fixture(scope="module")
def killed(infer_world, tmp_path_factory):
    """A grid run killed (SIGKILL, whole process group) once a few partitions are committed. Runs before
    the module's own Ray starts, as a separate process with its own local Ray."""
    require_ray()
    out = tmp_path_factory.mktemp("killed")
    command = [sys.executable, "-m", "jointssl", "infer",
               *infer_world.args("--infer.bbox", json.dumps(US), "--infer.out", str(out), "--ray.num_cpus", "2",
                                 "--chips.batch_size", "1", "--infer.batch_size", "1")]
    process = subprocess.Popen(command, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    parts: list[Path] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        parts = list(out.glob("run-*/part-*.parquet"))
        if len(parts) >= 3:
            break
        time.sleep(0.05)
    family = descendants(process.pid)
    os.killpg(process.pid, signal.SIGKILL)  # the process group we started: the driver and its local Ray
    for pid in family:  # anything that left the group (Ray daemons), by PID
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=30)
    time.sleep(1.0)
    assert not [pid for pid in family if alive(pid)], "processes of the killed run survived"
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    assert parts, f"no partition was committed before the deadline:\n{stderr[-3000:]}"
    return out, len(list(out.glob("run-*/part-*.parquet")))


@pytest.fixture(scope="module")
def ray_here(killed):
    require_ray()
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(infer_world, ray_here, tmp_path_factory):
    """A full grid run over the whole world: (out folder, summary, predictions)."""
    out = tmp_path_factory.mktemp("reference")
    code, summary = infer(infer_world, out, "--infer.bbox", json.dumps(US))
    assert code == 0
    return out, summary, gpd.read_parquet(summary["out"])


def test_grid_run_writes_geoparquet_with_provenance_matching_ground_truth(infer_world, reference):
    out, summary, tiles = reference
    assert len(tiles) == summary["tiles"] > len(infer_world.sites) and not tiles["tile_id"].duplicated().any()
    assert tiles.crs.to_epsg() == 4326 and set(tiles.geom_type) == {"Polygon"}
    ok = tiles[tiles["status"] == "ok"]
    assert len(ok) == summary["classified"] >= 0.95 * len(tiles)
    assert (tiles["model_name"] == "methane-classifier").all() and (tiles["model_version"] == "1").all()
    assert (tiles["run_id"] == summary["run_id"]).all() and summary["model"]["uri"] == "models:/methane-classifier/1"
    for m in infer_world.modalities:  # provenance: the item and acquisition time of every chip used
        used = ok[[m.name in v for v in ok["modalities"]]]
        assert len(used) and used[f"{m.name}_item_id"].notna().all() and used[f"{m.name}_datetime"].notna().all()
        assert (used[f"{m.name}_reason"] == "ok").all()
    assert any(len(v) < 3 for v in ok["modalities"])  # tiles lacking a sensor are classified from the rest
    probs = ok[[f"prob_{c}" for c in FACILITY_CLASSES]].to_numpy()
    assert np.allclose(probs.max(axis=1), ok["top_score"]) and ((probs >= 0) & (probs <= 1)).all()
    assert sum(summary["detections"].values()) == sum(len(d) for d in ok["detected"])

    precision, recall = scores(detections_near_sites(tiles, infer_world), ground_truth(infer_world))
    print(f"grid tiles vs ground truth: precision {precision:.2f} recall {recall:.2f}")
    # Grid tiles sit up to ~half a stride off the site centres the classifier learnt from, and each site
    # is seen by 1-3 of them (any may fire): recall stays high, precision is lower than on centred chips.
    assert recall >= 0.8 and precision >= 0.45

    folder = Path(summary["out"])
    assert (folder / "_map.png").read_bytes()[:4] == b"\x89PNG" and json.loads((folder / "_summary.json").read_text())
    import mlflow

    client = mlflow.MlflowClient(infer_world.tracking_uri)
    logged = {Path(a.path).name for a in client.list_artifacts(summary["run_id"], f"inference/{summary['run']}")}
    assert logged == {"summary.json", "map.png"}
    assert client.get_run(summary["run_id"]).data.metrics["infer_tiles"] == summary["tiles"]

    code, again = infer(infer_world, out, "--infer.bbox", json.dumps(US))  # the same command: nothing to redo
    assert code == 0 and again["run"] == summary["run"] and again["tiles_this_attempt"] == 0
    assert len(gpd.read_parquet(summary["out"])) == len(tiles)


def test_candidate_sites_reproduce_the_evaluation_exactly(infer_world, ray_here, tmp_path):
    code, summary = infer(infer_world, tmp_path, "--infer.sites", str(infer_world.root / "world" / "sites.parquet"))
    assert code == 0
    tiles = gpd.read_parquet(summary["out"]).set_index("tile_id")
    assert sorted(tiles.index) == sorted(infer_world.sites["site_id"])
    table = infer_world.table  # what evaluation reads: the co-location index's site-centred chips
    batch = ChipBatchLoader(infer_world.modalities)(table)
    expected = infer_world.model.predict_proba(to_tensors(batch, [ModalityInput.of(m) for m in infer_world.modalities]))
    got = tiles.loc[table["site_id"], [f"prob_{c}" for c in FACILITY_CLASSES]].to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    for m in infer_world.modalities:
        present = batch[f"{m.name}_present"]
        assert list(tiles.loc[table["site_id"][present], f"{m.name}_item_id"]) == list(batch[f"{m.name}_item"][present])
    truth = ground_truth(infer_world)
    predicted = {s: set(d) for s, d in zip(tiles.index, tiles["detected"])}
    evaluation = {s: {c for c, p in zip(FACILITY_CLASSES, row) if p >= 0.5}
                  for s, row in zip(table["site_id"], expected)}
    assert scores(predicted, truth) == scores(evaluation, truth)
    print(f"candidate sites vs ground truth: precision/recall {scores(predicted, truth)}")


def test_killed_run_resumes_with_every_tile_exactly_once(infer_world, killed, reference):
    out, committed_before = killed
    run = next(out.glob("run-*"))
    assert not (run / "_summary.json").exists()  # it was interrupted, not finished
    _, ref_summary, ref_tiles = reference
    assert run.name == ref_summary["run"]  # same command, same run key
    assert 0 < committed_before < ref_summary["cells_with_tiles"]
    code, summary = infer(infer_world, out, "--infer.bbox", json.dumps(US))
    assert code == 0 and summary["run"] == run.name
    tiles = gpd.read_parquet(run)
    duplicates = int(tiles["tile_id"].duplicated().sum())
    gaps = len(set(ref_tiles["tile_id"]) - set(tiles["tile_id"]))
    extra = len(set(tiles["tile_id"]) - set(ref_tiles["tile_id"]))
    print(f"after kill + resume: {committed_before} partitions survived the kill; duplicates {duplicates}, "
          f"gaps {gaps}, extra {extra}; {summary['tiles_this_attempt']} tiles predicted on resume")
    assert (duplicates, gaps, extra) == (0, 0, 0)
    assert 0 < summary["tiles_this_attempt"] < len(ref_tiles)  # only the missing partitions were redone
    merged = tiles.set_index("tile_id").loc[ref_tiles["tile_id"]]
    np.testing.assert_allclose(merged["top_score"], ref_tiles["top_score"], atol=1e-5)
    assert set(merged["run_id"]) == {summary["run_id"]}  # one MLflow run across both attempts


def test_incremental_runs_process_only_tiles_with_new_imagery(infer_world, reference, tmp_path):
    _, _, ref_tiles = reference
    world = tmp_path / "world"
    shutil.copytree(infer_world.root / "world" / "stac", world / "stac")  # same COGs, a catalog of our own
    args = ("--incremental", "--world.out", str(world), "--infer.bbox", json.dumps(US))
    code, first = infer(infer_world, tmp_path / "out", *args)
    assert code == 0 and first["since"] is None and first["tiles"] == len(ref_tiles)
    mark = first["watermark"]["after"]
    assert mark == first["newest_acquisition"]

    # new Sentinel-2 acquisitions over two sites, cloud-free and after the watermark
    s2_file = world / "stac" / "items" / "sentinel-2-l2a.ndjson"
    items = [json.loads(line) for line in s2_file.read_text().splitlines()]
    sites = list(dict.fromkeys(i["properties"]["jointssl:site_id"] for i in items))[:2]
    new = append_new_acquisitions(s2_file, sites)
    s2 = next(m for m in infer_world.modalities if m.name == "s2")
    boxes = chip_boxes(ref_tiles["lon"].to_numpy(), ref_tiles["lat"].to_numpy(), s2.chip_extent_m)
    affected = set(ref_tiles["tile_id"][np.max([coverage(boxes, shape(i["geometry"])) for i in new], axis=0) >= 0.95])
    assert 0 < len(affected) < len(ref_tiles)

    code, second = infer(infer_world, tmp_path / "out", *args)
    assert code == 0 and second["since"] == mark and second["run"] != first["run"]
    tiles = gpd.read_parquet(second["out"])
    print(f"incremental: {len(tiles)} tiles predicted after 2 new acquisitions (affected: {len(affected)}; "
          f"first run: {first['tiles']})")
    assert set(tiles["tile_id"]) == affected and second["tiles"] == len(affected)
    assert set(tiles["s2_item_id"]) == {i["id"] for i in new}  # the new, cloud-free scenes were used
    assert tiles["naip_item_id"].notna().any()  # with the best older imagery of the other sensors
    assert second["watermark"]["after"].startswith("2030-01-01T10:00:00")

    code, third = infer(infer_world, tmp_path / "out", *args)  # nothing new since
    assert code == 0 and third["tiles"] == 0 and third["watermark"]["after"] == second["watermark"]["after"]
    everything = gpd.read_parquet(tmp_path / "out")  # every run of the area, one dataset
    assert len(everything) == first["tiles"] + second["tiles"]


def test_an_area_without_imagery_is_an_error_that_says_so(infer_world, ray_here, tmp_path, capsys):
    code = main(["infer", *infer_world.args("--infer.bbox", "[-150, 10, -149, 11]", "--infer.out", str(tmp_path),
                                            "--ray.num_cpus", "2")])
    err = capsys.readouterr().err
    assert code == 1 and "no imagery in the area" in err and "fix:" in err


def test_incremental_runs_reuse_cached_naip_embeddings_and_predict_as_without_the_cache(infer_world, ray_here,
                                                                                        tmp_path):
    from tests.infer.test_embedding_cache import new_scenes

    world = tmp_path / "world"
    shutil.copytree(infer_world.root / "world" / "stac", world / "stac")
    sites = infer_world.sites.head(2)
    x, y = sites.geometry.x, sites.geometry.y
    bbox = json.dumps([float(x.min()) - 0.01, float(y.min()) - 0.01, float(x.max()) + 0.01, float(y.max()) + 0.01])
    args = ("--incremental", "--world.out", str(world), "--infer.bbox", bbox)
    marks = tmp_path / "marks"
    code, first = infer(infer_world, tmp_path / "out", *args, "--infer.watermarks", str(marks))
    assert code == 0 and first["embedding_cache"]["encoded"]["naip"] > 0 and not any(
        first["embedding_cache"]["cached"].values())
    shutil.copytree(marks, tmp_path / "marks-copy")  # the same watermark for the run without the cache

    ids = list(sites["site_id"])
    new_scenes(world, "sentinel-2-l2a", ids)
    new_scenes(world, "sentinel-1-rtc", ids[:1])
    code, second = infer(infer_world, tmp_path / "out", *args, "--infer.watermarks", str(marks))
    assert code == 0 and second["tiles"] > 0
    cache = second["embedding_cache"]
    print(f"incremental with the cache: {second['tiles']} tiles, encoded {cache['encoded']}, cached {cache['cached']}")
    assert cache["encoded"].get("naip", 0) == 0 and cache["cached"]["naip"] > 0
    assert cache["encoded"]["s2"] > 0 and cache["encoded"]["s1"] > 0 and cache["cached"]["s1"] > 0
    code, plain = infer(infer_world, tmp_path / "plain", *args, "--infer.watermarks", str(tmp_path / "marks-copy"),
                        "--infer.embedding_cache", "off")
    assert code == 0 and "embedding_cache" not in plain and plain["run"] == second["run"]
    got = gpd.read_parquet(second["out"]).drop(columns="run_id").set_index("tile_id").sort_index()
    want = gpd.read_parquet(plain["out"]).drop(columns="run_id").set_index("tile_id").sort_index()
    assert list(got.columns) == list(want.columns) and list(got.index) == list(want.index)
    for column in got.columns:
        if got[column].dtype.kind == "f":
            np.testing.assert_allclose(got[column], want[column], rtol=0, atol=1e-5, err_msg=column)
        else:
            assert got[column].astype(str).tolist() == want[column].astype(str).tolist(), column
