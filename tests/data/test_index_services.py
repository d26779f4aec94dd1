"""The data plane against the platform's real services: world in SeaweedFS S3, items in pgstac,
index through the pgstac STAC API, chips read back from S3 equal to a direct rasterio read."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from jointssl import storage
from jointssl.cli import main
from jointssl.config import load_job_config
from jointssl.data.chips import chip_grid, read_chip
from jointssl.data.dataset import ChipBatchLoader
from jointssl.data.pipeline import load_site_table, modalities_of
from jointssl.data.window_read import read_window

pytestmark = pytest.mark.services


@pytest.fixture()
def platform_env(platform, monkeypatch):
    for key, value in platform.env().items():
        monkeypatch.setenv(key, value)
    return platform.env()


def test_index_and_chips_through_s3_and_pgstac(platform_env, tmp_path, capsys):
    root = "s3://jointssl/test-index-services"
    common = ["--config", "configs/test.yaml", "--storage.root", root, "--world.sites", "10"]
    assert main(["world", *common, "--load-pgstac", platform_env["JOINTSSL_PGSTAC_DSN"]]) == 0
    assert main(["index", *common]) == 0
    fs, path = storage.filesystem(f"{root}/index/summary.json")
    summary = json.loads(fs.cat_file(path))
    assert summary["stac_url"] == platform_env["JOINTSSL_STAC_URL"]  # searched the pgstac API, not rustac
    assert summary["sites"] == 10 and summary["complete_sites"] >= 7
    index = pd.read_parquet(io.BytesIO(fs.cat_file(f"{path.rsplit('/', 1)[0]}/index.parquet")))
    ok = index[index["status"] == "ok"]
    assert set(ok["modality"]) == {"naip", "s2", "s1"}
    assert all(json.loads(h)[k].startswith("s3://jointssl/") for h in ok["hrefs"] for k in json.loads(h))

    config = load_job_config("configs/test.yaml", ["--storage.root", root, "--world.sites", "10"])
    modalities = modalities_of(config)
    table = load_site_table(config)
    batch = ChipBatchLoader(modalities)(table)
    for modality in modalities:
        present = batch[f"{modality.name}_present"]
        assert present.sum() >= 7, (modality.name, batch[f"{modality.name}_reason"])
        i = int(np.flatnonzero(present)[0])
        row = table.iloc[i]
        item = json.loads(row[f"{modality.name}_item"])
        grid = chip_grid(item, modality, row["lon"], row["lat"])
        band = modality.bands[0]
        resampling = "average" if band.native_gsd_m < modality.target_gsd_m * 0.75 else "nearest"
        stored = read_window(item["assets"][band.asset]["href"], [band.index], grid, resampling, 0)[0]
        chip = read_chip(item, modality, row["lon"], row["lat"])
        assert chip.pixels.shape == (len(modality.bands), modality.chip_size, modality.chip_size)
        np.testing.assert_array_equal(batch[modality.name][i], chip.pixels)
        valid = chip.valid
        scale = modality.scale
        expected = stored.astype(np.float32) * scale + modality.offset
        if modality.transform == "db":
            expected = 10 * np.log10(np.clip(expected, 1e-6, None))
        expected = (expected - band.mean) / band.std
        np.testing.assert_allclose(chip.pixels[0][valid], expected[valid], rtol=1e-5, atol=1e-4)
    # a 404 from object storage is a counted skip with its reason, not a crash
    gone = {**item, "assets": {k: {**v, "href": v["href"].replace(".tif", "-gone.tif")}
                               for k, v in item["assets"].items()}}
    skip = read_chip(gone, modality, row["lon"], row["lat"])
    assert getattr(skip, "reason", None) == "missing_file", skip
