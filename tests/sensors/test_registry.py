"""Sensor presets are data: every shipped preset loads, and mistakes in one are named."""

from __future__ import annotations

import pytest

from jointssl.config import ConfigError
from jointssl.sensors import PRESETS, load_preset, select
from jointssl.sensors.signing import planetary_computer, resolve


@pytest.mark.parametrize("preset", PRESETS)
def test_shipped_presets_load(preset):
    modalities = load_preset(preset)
    assert {m.name for m in modalities.values()} == {"naip", "s2", "s1"}
    for collection, modality in modalities.items():
        assert modality.collection == collection
        assert modality.chip_extent_m == pytest.approx(320.0)


def test_world_matches_planetary_computer_names():
    world, pc = load_preset("world"), load_preset("planetary-computer")
    assert list(world) == list(pc)
    for key in world:
        assert world[key].band_names == pc[key].band_names
        assert world[key].assets == pc[key].assets


def test_sentinel2_l2a_has_the_twelve_l2a_bands_and_scl():
    s2 = load_preset("world")["sentinel-2-l2a"]
    assert s2.band_names == ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
    assert s2.quality is not None and s2.quality.asset == "SCL"
    es = load_preset("earth-search")["sentinel-2-l2a"]
    assert es.band_names == s2.band_names and es.assets[:3] == ["coastal", "blue", "green"]


def test_naip_is_one_four_band_asset():
    naip = load_preset("world")["naip"]
    assert naip.assets == ["image"] and [b.index for b in naip.bands] == [1, 2, 3, 4]


def test_select_by_name_or_collection_and_unknown_names():
    preset = load_preset("world")
    assert [m.name for m in select(preset, ["s1", "sentinel-2-l2a"])] == ["s1", "s2"]
    with pytest.raises(ConfigError, match="unknown modality 'landsat'"):
        select(preset, ["landsat"])


def test_a_bad_preset_file_names_the_key(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("my-col:\n  name: x\n  bands:\n    - {name: a, asset: a, std: 0}\n")
    with pytest.raises(ConfigError) as info:
        load_preset(str(path))
    assert "my-col.bands[0].std" in str(info.value) and str(path) in str(info.value)
    with pytest.raises(ConfigError, match="neither a built-in preset"):
        load_preset(str(tmp_path / "absent.yaml"))


def test_href_modifiers():
    assert resolve(None)("s3://b/k.tif") == "s3://b/k.tif"
    assert resolve("jointssl.sensors.signing.planetary_computer") is planetary_computer
    # Non-Azure or already signed hrefs pass unchanged (no network needed for them).
    assert planetary_computer("s3://bucket/a.tif") == "s3://bucket/a.tif"
    signed = "https://acct.blob.core.windows.net/c/a.tif?sv=1&sig=abc"
    assert planetary_computer(signed) == signed
