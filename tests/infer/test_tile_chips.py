"""Block reads: the chips of overlapping tiles read through one window per item equal the data plane's
own chip-by-chip reads; failures are per-tile reasons; predictions say which sensors were used."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from jointssl.data.chips import read_chips
from jointssl.data.window_read import ChipGrid
from jointssl.infer.plan import MARKER_ID, PlanSettings, plan_group
from jointssl.infer.predict import TilePredictor
from jointssl.infer.tile_chips import TileChipLoader, union_window
from jointssl.infer.tiles import TileGrid, cell_of
from jointssl.models.multimodal import ModalityInput
from jointssl.stac.client import open_client
from jointssl.stac.embedded import stac_api
from jointssl.train.loop import to_tensors


@pytest.fixture(scope="module")
def tiles(infer_world) -> pd.DataFrame:
    """Tiles (overlap 0.75: many per site, sharing items) around the first six sites."""
    s = PlanSettings(infer_world.modalities, TileGrid.of(infer_world.modalities, 0.75, 1.0), (None, None), None,
                     0.95, 200, 16)
    frames = []
    with stac_api(None, str(infer_world.root / "world")) as url:
        client, _ = open_client(url)
        for site in infer_world.sites.head(6).itertuples():
            x, y = site.geometry.x, site.geometry.y
            area = box(x - 0.01, y - 0.01, x + 0.01, y + 0.01)
            frames += list(plan_group(client, s, [cell_of(x, y, 1.0)], area, None))
    out = pd.concat(frames, ignore_index=True)
    return out[out["tile_id"] != MARKER_ID].reset_index(drop=True)


def test_block_reads_equal_chip_by_chip_reads(infer_world, tiles):
    assert len(tiles) > 2 * 6  # several tiles per item: shared windows are actually used
    batch = TileChipLoader(infer_world.modalities)(tiles)
    requests, keys = [], []
    for i, row in tiles.iterrows():
        for m in infer_world.modalities:
            if row[f"{m.name}_item"]:
                requests.append((json.loads(row[f"{m.name}_item"]), m, row["lon"], row["lat"]))
                keys.append((i, m))
    for (i, m), chip in zip(keys, read_chips(requests)):
        assert batch[f"{m.name}_present"][i] == hasattr(chip, "pixels"), (m.name, batch[f"{m.name}_reason"][i])
        if hasattr(chip, "pixels"):
            np.testing.assert_array_equal(batch[m.name][i], chip.pixels)
            assert batch[f"{m.name}_item"][i] == json.loads(tiles.loc[i, f"{m.name}_item"])["id"]
            assert batch[f"{m.name}_datetime"][i].startswith("20")
        else:
            assert batch[f"{m.name}_reason"][i] == chip.reason
    assert batch["s2"].shape == (len(tiles), 12, 32, 32) and batch["naip"].shape == (len(tiles), 4, 64, 64)


def test_each_loader_batch_leaves_its_task_as_a_block_of_its_own(infer_world, tiles):
    from ray.data._internal.output_buffer import BlockOutputBuffer, OutputBlockSizeOption
    from ray.data.block import BlockAccessor
    from ray.data.context import DataContext

    from jointssl.config import load_job_config
    from jointssl.infer.resources import stream_block_bytes

    size = max(1, len(tiles) // 3)
    config = load_job_config(None, ["--chips.batch_size", str(size)])
    loader = TileChipLoader(infer_world.modalities)
    batches = [loader(tiles.iloc[start:start + size]) for start in range(0, len(tiles), size)]

    def blocks(target: int) -> tuple[list[int], list[int]]:
        """(rows of the blocks a map task hands on as its batches come, rows of what is left at its end)."""
        out = BlockOutputBuffer(OutputBlockSizeOption.of(target_max_block_size=target))
        streamed = []
        for batch in batches:
            out.add_batch(batch)
            streamed += [BlockAccessor.for_block(b).num_rows() for b in out.iter_ready_blocks()]
        out.finalize()
        return streamed, [BlockAccessor.for_block(b).num_rows() for b in out.iter_ready_blocks()]

    whole = [len(b["tile_id"]) for b in batches]
    streamed, last = blocks(stream_block_bytes(config, infer_world.modalities))
    assert streamed + last == whole and len(streamed) >= len(whole) - 1  # one block a batch, none sliced
    assert blocks(DataContext.get_current().target_max_block_size) == ([], [len(tiles)])  # Ray's default: at the end


def test_union_window_is_square_and_on_the_chip_grid():
    a = ChipGrid(32614, (100.0, 200.0, 420.0, 520.0), 32, 10.0)
    b = ChipGrid(32614, (260.0, 120.0, 580.0, 440.0), 32, 10.0)
    w = union_window([a, b])
    assert w.bounds == (100.0, 40.0, 580.0, 520.0) and w.size == 48


def test_unreadable_items_become_reasons_for_their_tiles_only(infer_world, tiles):
    broken = tiles.head(4).copy()
    item = json.loads(broken.loc[0, "s2_item"])
    item["assets"]["B04"]["href"] = item["assets"]["B04"]["href"].replace(".tif", "-gone.tif")
    broken.loc[0, "s2_item"] = json.dumps(item)
    broken.loc[1, "naip_item"] = None
    broken.loc[1, "naip_reason"] = "partial_cover"
    batch = TileChipLoader(infer_world.modalities)(broken)
    assert batch["s2_reason"][0] == "missing_file" and not batch["s2_present"][0]
    assert batch["naip_reason"][1] == "partial_cover" and batch["naip_item"][1] == ""
    assert batch["naip_present"][0] and batch["s1_present"][1]  # the rest of the batch is read


def test_predictor_uses_the_sensors_a_tile_has(infer_world, tiles):
    batch = TileChipLoader(infer_world.modalities)(tiles.head(6))
    for name in ("naip", "s1"):  # tile 1 has Sentinel-2 alone
        batch[f"{name}_present"][1] = False
        batch[f"{name}_reason"][1] = "no_item"
    for m in infer_world.modalities:  # tile 2 has nothing
        batch[f"{m.name}_present"][2] = False
        batch[f"{m.name}_item"][2] = ""
    predictor = TilePredictor("models:/methane-classifier@champion", infer_world.tracking_uri,
                              [m.name for m in infer_world.modalities], infer_world.model.classes)
    out = predictor(batch)
    assert list(out["status"][:3]) == ["ok", "ok", "no_imagery"]
    assert out["modalities"][1] == "s2" and out["modalities"][0].count("+") >= 1
    assert np.isnan(out["prob_cafo"][2]) and out["top_class"][2] is None
    keep = [0, 1, 3, 4, 5]
    expected = infer_world.model.predict_proba(to_tensors({k: v[keep] for k, v in batch.items()},
                                                          [ModalityInput.of(m) for m in infer_world.modalities]))
    got = np.stack([out[f"prob_{c}"][keep] for c in predictor.classes], axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert list(out["top_class"][keep]) == [predictor.classes[k] for k in expected.argmax(axis=1)]


def test_a_predictor_given_the_driver_s_download_predicts_as_one_that_asks_the_registry(infer_world, tiles, tmp_path):
    from jointssl.classify.registry import download_classifier
    from jointssl.infer.predict import DownloadedModel

    champion = "models:/methane-classifier@champion"
    batch = TileChipLoader(infer_world.modalities)(tiles.head(5))
    names = [m.name for m in infer_world.modalities]
    path = download_classifier(champion, infer_world.tracking_uri, str(tmp_path))
    assert path.startswith(str(tmp_path))
    from_registry = TilePredictor(champion, infer_world.tracking_uri, names, infer_world.model.classes)(batch)
    from_download = TilePredictor(champion, "http://127.0.0.1:9/never-asked", names, infer_world.model.classes,
                                  downloaded=DownloadedModel(path))(batch)
    elsewhere = TilePredictor(champion, infer_world.tracking_uri, names, infer_world.model.classes,
                              downloaded=DownloadedModel("/no/such/model", "another-node"))(batch)  # asks the registry
    for c in infer_world.model.classes:
        np.testing.assert_array_equal(from_download[f"prob_{c}"], from_registry[f"prob_{c}"])
        np.testing.assert_array_equal(elsewhere[f"prob_{c}"], from_registry[f"prob_{c}"])


def test_the_download_loads_without_mlflow_and_a_folder_without_a_saved_classifier_says_so(infer_world, tmp_path):
    import subprocess
    import sys

    from jointssl.classify.registry import download_classifier, load_downloaded_classifier
    from jointssl.errors import JointsslError

    champion = "models:/methane-classifier@champion"
    path = download_classifier(champion, infer_world.tracking_uri, str(tmp_path / "dl"))
    code = ("import sys; from jointssl.classify.registry import load_downloaded_classifier; "
            f"m = load_downloaded_classifier({path!r}, 'm'); print(type(m).__name__, 'mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["MethaneClassifier", "False"]

    (tmp_path / "encoder").mkdir()
    from jointssl.models.saved import save_encoder

    save_encoder(infer_world.model.encoder, str(tmp_path / "encoder"))
    with pytest.raises(JointsslError, match="saved 'encoder'.*not a classifier"):
        load_downloaded_classifier(str(tmp_path / "encoder"), "models:/other/1")
