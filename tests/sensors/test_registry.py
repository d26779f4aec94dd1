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


def test_href_modifier_can_be_switched_off_or_replaced_by_config():
    from jointssl.errors import JointsslError

    assert load_preset("planetary-computer")["naip"].href_modifier == "jointssl.sensors.signing.planetary_computer"
    off = load_preset("planetary-computer", "none")
    assert all(m.href_modifier is None for m in off.values())
    other = load_preset("planetary-computer", "os.path.basename")
    assert {m.href_modifier for m in other.values()} == {"os.path.basename"}
    with pytest.raises(JointsslError, match="cannot be imported"):
        load_preset("planetary-computer", "no.such.signer")


def test_a_signing_failure_is_one_error_naming_the_collection_and_the_fix():
    import dataclasses
    import json
    from pathlib import Path

    from jointssl.data.chips import read_chips
    from jointssl.sensors.signing import SigningFailed

    item = json.loads((Path(__file__).parents[1] / "data" / "real-catalogs" / "pc-naip-6.json").read_text())
    naip = dataclasses.replace(load_preset("planetary-computer")["naip"],
                               href_modifier="tests.sensors.test_registry.refuse_to_sign")
    with pytest.raises(SigningFailed) as caught:
        read_chips([(item, naip, -116.03, 49.03)] * 3)
    assert "naip" in str(caught.value) and "index.href_modifier: none" in caught.value.hint


def refuse_to_sign(href: str) -> str:
    raise ConnectionError("token endpoint unreachable")


def test_a_preset_extends_another_and_changes_only_what_it_names(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("extends: world\nsentinel-1-rtc: {chip_size: 16, target_gsd_m: 20.0}\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\nnaip: {target_gsd_m: 1.0, chip_size: 320}\n")  # relative to its folder
    world, changed = load_preset("world"), load_preset(str(child))
    assert list(changed) == list(world)
    assert (changed["naip"].target_gsd_m, changed["naip"].chip_size) == (1.0, 320)
    assert changed["naip"].bands == world["naip"].bands and changed["naip"].scale == world["naip"].scale
    assert (changed["sentinel-1-rtc"].chip_size, changed["sentinel-1-rtc"].chip_extent_m) == (16, 320.0)
    assert changed["sentinel-2-l2a"] == world["sentinel-2-l2a"]


def test_the_shipped_naip_1m_preset_keeps_every_chip_at_320_m():
    from pathlib import Path

    preset = load_preset(str(Path(__file__).parents[2] / "configs" / "presets" / "naip-1m.yaml"))
    assert preset["naip"].chip_size == 320 and {m.chip_extent_m for m in preset.values()} == {320.0}


def test_extends_mistakes_are_named(tmp_path):
    loop_a, loop_b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    loop_a.write_text("extends: b.yaml\n")
    loop_b.write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="extend each other in a loop"):
        load_preset(str(loop_a))
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: [world]\n")
    with pytest.raises(ConfigError, match="names the preset this one changes"):
        load_preset(str(bad))
    missing = tmp_path / "missing.yaml"
    missing.write_text("extends: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="neither a built-in preset"):
        load_preset(str(missing))
