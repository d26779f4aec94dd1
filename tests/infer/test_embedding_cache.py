"""The per-sensor embedding cache: a second pass after new Sentinel-2 / Sentinel-1 scenes (NAIP unchanged)
encodes only those sensors' tiles and predicts what a pass without the cache predicts; cell files merge,
refuse stale items, survive damage, and old encoder versions are deleted by the retention rule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from jointssl.infer import tile_chips
from jointssl.infer.embedding_cache import (
    CacheReader,
    CacheSpec,
    SensorCache,
    apply_retention,
    cache_spec,
    commit_cell,
    drop_cache,
    item_key,
    read_cell,
    tile_key,
    touch_versions,
)
from jointssl.infer.plan import MARKER_ID, PlanSettings, plan_group
from jointssl.infer.predict import TilePredictor
from jointssl.infer.tile_chips import TileChipLoader
from jointssl.infer.tiles import TileGrid, cell_of
from jointssl.infer.writer import PartitionWriter, RunConstants
from jointssl.stac.client import open_client
from jointssl.stac.embedded import stac_api
from tests.infer.conftest import append_new_acquisitions

CHAMPION = "models:/methane-classifier@champion"
SINCE = "2029-01-01T00:00:00.000000Z"
"""Every item of the test world is older; the new scenes below are newer."""


def plan(world: Path, infer_world, sites: pd.DataFrame, since: str | None) -> pd.DataFrame:
    """The tiles (grid, overlap 0.5) of small areas around ``sites``, as planner actors plan them."""
    s = PlanSettings(infer_world.modalities, grid(infer_world), (None, None), since, 0.95, 200, 16)
    frames = []
    with stac_api(None, str(world)) as url:
        client, _ = open_client(url)
        for site in sites.itertuples():
            x, y = site.geometry.x, site.geometry.y
            frames += list(plan_group(client, s, [cell_of(x, y, 1.0)], box(x - 0.01, y - 0.01, x + 0.01, y + 0.01),
                                      None))
    out = pd.concat(frames, ignore_index=True)
    return out[out["tile_id"] != MARKER_ID].reset_index(drop=True)


def grid(infer_world) -> TileGrid:
    return TileGrid.of(infer_world.modalities, 0.5, 1.0)


class Counting:
    """Forward hooks on a predictor's encoders: calls per sensor."""

    def __init__(self, predictor: TilePredictor):
        predictor._loading.join()
        model = predictor._loaded["model"]
        self.calls = {m: 0 for m in model.modalities}
        for m in model.modalities:
            model.encoder.encoders[m].register_forward_hook(self._hook(m))

    def _hook(self, m: str):
        def hook(*_):
            self.calls[m] += 1
        return hook


def new_scenes(world: Path, collection: str, sites: list[str]) -> list[str]:
    """Append a copy of each site's first item of ``collection``, acquired in 2030; their ids."""
    return [i["id"] for i in append_new_acquisitions(world / "stac" / "items" / f"{collection}.ndjson", sites)]


def test_a_pass_after_new_s2_and_s1_scenes_encodes_only_those_and_predicts_as_without_cache(infer_world, tmp_path,
                                                                                            monkeypatch):
    world = tmp_path / "world"
    shutil.copytree(infer_world.root / "world" / "stac", world / "stac")
    names = [m.name for m in infer_world.modalities]
    g = grid(infer_world)
    spec = cache_spec(infer_world.model, names, (g.side_m, g.stride_m, g.cell_deg), str(tmp_path / "cache"), CHAMPION)
    sites = infer_world.sites.head(2)

    # first pass (fills the cache): every present sensor of every tile is encoded
    first = plan(world, infer_world, sites, None)
    predictor = TilePredictor(CHAMPION, infer_world.tracking_uri, names, infer_world.model.classes, cache=True)
    counting = Counting(predictor)
    writer = PartitionWriter(str(tmp_path / "run1"), RunConstants("r1", "id", "m", "1"), infer_world.model.classes,
                             names, g.side_m, 0.5)
    writer.embeddings = spec
    batch = TileChipLoader(infer_world.modalities, cache=spec)(first)
    out = predictor(batch)
    writer.add(out)
    assert not writer.pending  # every cell committed, with its embeddings
    for m in names:
        assert counting.calls[m] > 0 and out[f"{m}_encoded"].sum() == batch[f"{m}_present"].sum() > 0
        assert not out[f"{m}_cached"].any()

    # new Sentinel-2 scenes over both sites and a new Sentinel-1 scene over the first; NAIP unchanged
    ids = list(sites["site_id"])
    new = set(new_scenes(world, "sentinel-2-l2a", ids) + new_scenes(world, "sentinel-1-rtc", ids[:1]))
    second = plan(world, infer_world, sites, SINCE)
    assert len(second) and set(second["tile_id"]) <= set(first["tile_id"])
    counting.calls = {m: 0 for m in names}
    read: list[str] = []  # every file the loader opens (the real reader, recorded)
    real_read = tile_chips.read_windows
    monkeypatch.setattr(tile_chips, "read_windows", lambda href, *a, **k: read.append(href) or real_read(href, *a, **k))
    batch = TileChipLoader(infer_world.modalities, cache=spec)(second)
    monkeypatch.undo()
    files = {m: {a["href"] for text in second[f"{m}_item"] if text for a in json.loads(text)["assets"].values()}
             for m in names}
    assert read and set(read) <= files["s2"] | files["s1"]  # NAIP unchanged: not one NAIP file opened
    assert not batch["naip"].any()  # and no NAIP pixel in the batch
    cached = predictor(batch)
    print(f"second pass: {len(second)} tiles; encoder calls {counting.calls}; rows encoded "
          f"{ {m: int(cached[f'{m}_encoded'].sum()) for m in names} }, cached "
          f"{ {m: int(cached[f'{m}_cached'].sum()) for m in names} }")
    assert counting.calls["naip"] == 0 and cached["naip_cached"].sum() == batch["naip_present"].sum() > 0
    for m in ("s2", "s1"):  # encoded exactly where the sensor's item is new; reused where it is not
        is_new = np.array([i in new for i in cached[f"{m}_item"]])
        assert counting.calls[m] > 0 and is_new.any()
        np.testing.assert_array_equal(cached[f"{m}_encoded"], is_new & batch[f"{m}_present"])
        np.testing.assert_array_equal(cached[f"{m}_cached"], ~is_new & batch[f"{m}_present"])
    assert cached["s1_cached"].any()  # tiles of the second site keep their older Sentinel-1 embedding

    plain = TilePredictor(CHAMPION, infer_world.tracking_uri, names, infer_world.model.classes)(
        TileChipLoader(infer_world.modalities)(second))
    for column in plain:  # predictions and provenance as without the cache
        if plain[column].dtype.kind == "f":
            np.testing.assert_allclose(cached[column], plain[column], rtol=1e-5, atol=1e-6, err_msg=column)
        else:
            assert list(cached[column]) == list(plain[column]), column


def version(tmp_path: Path, digest: str = "d1") -> CacheSpec:
    return CacheSpec(str(tmp_path), (SensorCache("s2", digest, 3, 4),), "models:/x/1")


def rows(tile_ids: list[str], item: str, value: float) -> dict[str, np.ndarray]:
    n = len(tile_ids)
    lon = np.array([float(ord(t) - ord("a")) for t in tile_ids])
    return {"tile_id": np.array(tile_ids, dtype=object), "lon": lon, "lat": np.zeros(n),
            "s2_encoded": np.ones(n, bool), "s2_item_key": np.array([item] * n, dtype=object),
            "s2_embedding": np.full((n, 3), value, np.float32), "s2_chip_stats": np.full((n, 4), value)}


def test_cell_files_merge_and_reuse_only_the_same_tile_and_item(tmp_path):
    spec = version(tmp_path)
    assert commit_cell(spec, "x1_y2", rows(["a", "b"], "old", 1.0)) == {"s2": 2}
    commit_cell(spec, "x1_y2", rows(["b", "c"], "new", 2.0))  # b re-encoded with a new item
    entries = read_cell(str(tmp_path), spec.sensors[0], "x1_y2")
    assert sorted(entries) == [tile_key(t, x, 0.0) for t, x in (("a", 0.0), ("b", 1.0), ("c", 2.0))]
    reader = CacheReader(spec)
    assert reader.lookup("s2", "x1_y2", tile_key("a", 0.0, 0.0), "old").embedding.tolist() == [1.0] * 3
    assert reader.lookup("s2", "x1_y2", tile_key("b", 1.0, 0.0), "new").chip_stats.tolist() == [2.0] * 4
    assert reader.lookup("s2", "x1_y2", tile_key("b", 1.0, 0.0), "old") is None  # stale item: not reused
    assert reader.lookup("s2", "x1_y2", tile_key("a", 5.0, 0.0), "old") is None  # same id, another place
    assert reader.lookup("s2", "x9_y9", tile_key("a", 0.0, 0.0), "old") is None  # nothing cached there
    other = CacheReader(version(tmp_path, "d2"))  # another encoder version sees nothing
    assert other.lookup("s2", "x1_y2", tile_key("a", 0.0, 0.0), "old") is None


def test_a_damaged_cell_file_is_a_miss_not_a_failure(tmp_path):
    spec = version(tmp_path)
    commit_cell(spec, "x1_y2", rows(["a"], "i", 1.0))
    (tmp_path / "s2-d1" / "x1_y2.parquet").write_bytes(b"not parquet")
    assert read_cell(str(tmp_path), spec.sensors[0], "x1_y2") == {}


def test_item_keys_change_with_reprocessing():
    item = {"collection": "c", "id": "i", "properties": {"datetime": "2023-01-01T00:00:00Z"}}
    again = {**item, "properties": {**item["properties"], "updated": "2024-01-01T00:00:00Z"}}
    assert item_key(item) != item_key(again) and item_key(item) == item_key(json.loads(json.dumps(item)))


def test_retention_keeps_the_current_and_most_recent_versions_and_drop_removes_all(tmp_path):
    for digest in ("d1", "d2", "d3"):
        spec = version(tmp_path, digest)
        commit_cell(spec, "x1_y2", rows(["a"], "i", 1.0))
        touch_versions(spec)
    old = json.loads((tmp_path / "s2-d1" / "_version.json").read_text())
    old["last_used"] = "2000-01-01T00:00:00Z"  # d1 is the oldest
    (tmp_path / "s2-d1" / "_version.json").write_text(json.dumps(old))
    deleted = apply_retention(version(tmp_path, "d2"), keep=2)  # current d2, plus the most recent other (d3)
    assert [Path(d).name for d in deleted] == ["s2-d1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s2-d2", "s2-d3"]
    assert drop_cache(str(tmp_path)) and not tmp_path.exists() and not drop_cache(str(tmp_path))


def test_digests_follow_the_encoder_weights_and_the_grid(infer_world):
    import copy

    import torch

    names = [m.name for m in infer_world.modalities]
    base = cache_spec(infer_world.model, names, (480.0, 240.0, 1.0), "x", CHAMPION)
    assert base.of("naip").dim == infer_world.model.encoder.encoders["naip"].out_dim
    moved = cache_spec(infer_world.model, names, (480.0, 120.0, 1.0), "x", CHAMPION)
    assert {s.digest for s in base.sensors}.isdisjoint(s.digest for s in moved.sensors)
    changed = copy.deepcopy(infer_world.model)
    changed.head = torch.nn.Identity()  # a new head on the same encoders: embeddings stay valid
    assert cache_spec(changed, names, (480.0, 240.0, 1.0), "x", CHAMPION).sensors == base.sensors
    with torch.no_grad():
        next(changed.encoder.encoders["s1"].parameters()).add_(1.0)
    after = {s.sensor: s.digest for s in cache_spec(changed, names, (480.0, 240.0, 1.0), "x", CHAMPION).sensors}
    # the test classifier's sensors share one trunk: touching it changes every sensor's digest
    assert after["s1"] != base.of("s1").digest


def test_the_config_reads_yaml_s_bare_on_and_off_and_refuses_others():
    from jointssl.config import load_job_config
    from jointssl.config.load import ConfigError
    from jointssl.infer.config import cache_enabled

    def infer(*extra: str):
        return load_job_config("configs/test.yaml", list(extra)).infer

    assert infer("--infer.embedding_cache", "off").embedding_cache == "off"
    assert cache_enabled(infer("--infer.embedding_cache", "on"))
    assert cache_enabled(infer("--infer.incremental", "true")) and not cache_enabled(infer())
    assert not cache_enabled(infer("--infer.incremental", "true", "--infer.embedding_cache", "off"))
    with pytest.raises(ConfigError, match="embedding_cache"):
        infer("--infer.embedding_cache", "sometimes")


def test_a_remembered_spec_spares_the_driver_loading_the_model(tmp_path):
    from jointssl.infer.embedding_cache import remember_spec, remembered_spec, spec_key

    model = tmp_path / "classifier"  # a downloaded saved model: weights + its config
    model.mkdir()
    (model / "jointssl.json").write_text("{}")
    (model / "weights.safetensors").write_bytes(b"weights v1")
    key = spec_key(str(model), ["s2"], (480.0, 240.0, 1.0))
    assert remembered_spec(str(tmp_path / "c"), key, "models:/x/1") is None
    remember_spec(CacheSpec(str(tmp_path / "c"), (SensorCache("s2", "d1", 3, 4),), "models:/x/1"), key)
    assert remembered_spec(str(tmp_path / "c"), key, "models:/x/1").sensors == (SensorCache("s2", "d1", 3, 4),)
    assert spec_key(str(model), ["s2"], (480.0, 120.0, 1.0)) != key  # another grid
    (model / "weights.safetensors").write_bytes(b"weights v2")
    assert spec_key(str(model), ["s2"], (480.0, 240.0, 1.0)) != key  # other weights


def test_items_newer_than_the_watermark_are_not_looked_up():
    from jointssl.infer.tile_chips import newer_than

    item = {"id": "i", "properties": {"datetime": "2030-01-01T10:00:00Z"}}
    assert newer_than(item, "2029-12-31T00:00:00.000000Z") and not newer_than(item, "2030-01-01T10:00:00.000000Z")
    assert not newer_than(item, None) and not newer_than({"id": "x", "properties": {}}, "2020-01-01T00:00:00Z")
