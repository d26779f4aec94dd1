"""One world published in each catalog's dialect and read with the preset of the same name: the items look
as that catalog publishes them, and the chips of every site are the same physical values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jointssl.config import load_job_config
from jointssl.config.load import ConfigError
from jointssl.data.chips import item_from_row
from jointssl.data.dataset import ChipBatchLoader
from jointssl.data.index_job import run_index
from jointssl.data.pipeline import load_site_table, modalities_of
from jointssl.world.publish import generate_world

SITES = 8
DIALECTS = ("world", "planetary-computer", "earth-search")


@dataclass
class Published:
    root: Path
    summary: dict
    table: pd.DataFrame
    batch: dict[str, np.ndarray]
    items: dict[str, list[dict]]
    """Published collection id -> its items as written."""


def publish_and_index(root: Path, dialect: str, modalities: tuple[str, ...] = ("naip", "s2", "s1")) -> Published:
    args = ["--storage.root", str(root), "--world.sites", str(SITES), "--world.dialect", dialect,
            "--index.preset", dialect, "--index.href_modifier", "none", "--chips.require", "[]",
            "--index.modalities", f"[{', '.join(modalities)}]"]
    config = load_job_config("configs/test.yaml", args)
    manifest = generate_world(config, progress=False)
    summary = run_index(config)
    table = load_site_table(config)
    batch = ChipBatchLoader(modalities_of(config))(table)
    items = {cid: [json.loads(line) for line in Path(url).read_text().splitlines()]
             for cid, url in manifest.item_files.items()}
    return Published(root, summary, table, batch, items)


@pytest.fixture(scope="module")
def dialects(tmp_path_factory) -> dict[str, Published]:
    return {d: publish_and_index(tmp_path_factory.mktemp(d), d) for d in DIALECTS}


def test_items_look_as_each_catalog_publishes_them(dialects):
    pc, es = dialects["planetary-computer"].items, dialects["earth-search"].items
    assert set(pc) == {"naip", "sentinel-2-l2a", "sentinel-1-rtc"}
    assert set(es) == {"naip", "sentinel-2-l2a", "sentinel-1-grd"}
    # Sentinel-2: Planetary Computer band ids and no raster:bands scale/offset; Earth Search common names with
    # scale/offset per asset; both eras of processing baseline in the items' own fields
    s2_pc, s2_es = pc["sentinel-2-l2a"], es["sentinel-2-l2a"]
    assert set(s2_pc[0]["assets"]) >= {"B02", "B04", "B8A", "SCL"}
    assert all("scale" not in b for i in s2_pc for a in i["assets"].values() for b in a.get("raster:bands", []))
    assert set(s2_es[0]["assets"]) >= {"blue", "red", "nir08", "swir16", "scl"}
    assert {i["properties"]["s2:processing_baseline"] for i in s2_pc} == {"02.12", "05.10"}
    offsets = {(i["properties"]["s2:processing_baseline"], i["assets"]["red"]["raster:bands"][0]["offset"])
               for i in s2_es if "offset" in i["assets"]["red"]["raster:bands"][0]}
    assert offsets == {("05.09", -0.1)}  # pre-04.00 items: offset 0, left out as the raster extension's default
    assert all("proj:code" not in i["properties"] and "proj:epsg" in i["properties"] for i in s2_pc + s2_es)
    # NAIP: one 4-band 'image' asset at the survey's native GSD, NAD83 UTM, proj on the item only
    naip = pc["naip"]
    assert {i["properties"]["gsd"] for i in naip} == {0.3, 0.6, 1.0}
    assert all(26901 <= i["properties"]["proj:epsg"] <= 26923 for i in naip)
    assert all(set(i["assets"]) == {"image"} and "proj:transform" not in i["assets"]["image"] for i in naip)
    # Sentinel-1: PC RTC linear float32 with nodata -32768 and start/end_datetime with a space; ES GRD on degrees
    rtc = pc["sentinel-1-rtc"][0]
    vv_band = rtc["assets"]["vv"]["raster:bands"][0]
    assert vv_band == {"nodata": -32768.0, "data_type": "float32", "spatial_resolution": 10.0}
    assert " " in rtc["properties"]["start_datetime"] and rtc["properties"]["end_datetime"].endswith("+00:00")
    grd = es["sentinel-1-grd"][0]
    assert grd["properties"]["proj:epsg"] == 4326 and grd["properties"]["sar:product_type"] == "GRD"
    assert grd["assets"]["vv"]["raster:bands"][0]["data_type"] == "uint16"


def test_the_index_records_each_rule_and_refuses_grd(dialects):
    pc, es, world = (dialects[d].summary for d in ("planetary-computer", "earth-search", "world"))
    assert set(pc["radiometry"]["s2"]) <= {"s2:processing_baseline<04.00", "s2:processing_baseline>=04.00"}
    assert set(es["radiometry"]["s2"]) == set(world["radiometry"]["s2"]) == {"raster:bands"}
    assert es["missing"]["s1"] == {"not_terrain_corrected": SITES}
    assert "sentinel-1-rtc" in es["refusals"]["s1"]["not_terrain_corrected"]
    assert pc["complete_sites"] == world["complete_sites"] > 0


_PROJ_V1 = {"proj:epsg", "proj:wkt2", "proj:projjson", "proj:geometry", "proj:bbox", "proj:centroid", "proj:shape",
            "proj:transform"}
PROJ_FIELDS = {"v1.0.0": _PROJ_V1, "v1.1.0": _PROJ_V1 | {"proj:code", "proj:authority"},
               "v2.0.0": _PROJ_V1 - {"proj:epsg"} | {"proj:code"}}
"""The fields each version of the projection extension defines (its schema refuses any other proj: field).
The extension schemas are not available offline (pystac ships only the STAC core schemas), so the fields are
checked here, not the whole schema."""


def _projection_version(item: dict) -> tuple[str, set[str]]:
    """(the projection extension version the item declares, the proj: fields it and its assets carry)."""
    declared = [url.split("/")[-2] for url in item["stac_extensions"] if "/projection/" in url]
    assert len(declared) == 1, (item["id"], declared)
    fields = {k for k in item["properties"] if k.startswith("proj:")}
    for asset in item["assets"].values():
        fields |= {k for k in asset if k.startswith("proj:")}
    return declared[0], fields


def test_items_keep_to_the_projection_version_they_declare(dialects):
    """The catalogs' dialects write proj:epsg without proj:code and declare projection v1.1.0, as Earth Search
    does (projection v2 has no proj:epsg); the recorded real items keep to theirs too (v1.0.0 / v1.1.0)."""
    corpus = Path(__file__).parents[1] / "data" / "real-catalogs"
    recorded = [json.loads(p.read_text()) for p in sorted(corpus.glob("*.json"))]
    published = [i for d in ("planetary-computer", "earth-search") for found in dialects[d].items.values()
                 for i in found]
    for item in recorded + published:
        if not any("/projection/" in url for url in item["stac_extensions"]):
            assert not any(k.startswith("proj:") for k in item["properties"]), item["id"]  # PC GRD: none
            continue
        version, fields = _projection_version(item)
        assert fields and fields <= PROJ_FIELDS[version], (item["id"], version, sorted(fields - PROJ_FIELDS[version]))
    assert {_projection_version(i)[0] for i in published} == {"v1.1.0"}


def _eras(published: Published) -> list[str | None]:
    """Per site: the processing baseline of its chosen Sentinel-2 item (None: no item)."""
    out = []
    for value in published.table["s2_item"]:
        out.append(item_from_row(value)["properties"]["s2:processing_baseline"] if isinstance(value, str) else None)
    return out


def test_chips_agree_across_dialects(dialects):
    world, pc, es = (dialects[d].batch for d in DIALECTS)
    eras = _eras(dialects["planetary-computer"])
    assert {"02.12", "05.10"} <= set(eras), eras  # sites in both baseline eras are compared
    for name in ("s2", "s1"):
        np.testing.assert_array_equal(world[f"{name}_present"], pc[f"{name}_present"])
        representable = _representable(pc[name]) if name == "s2" else np.ones(pc[name].shape, dtype=bool)
        np.testing.assert_allclose(pc[name][representable], world[name][representable], rtol=0, atol=1e-4,
                                   err_msg=name)
        assert (~representable).mean() < 1e-3  # a reflectance below 1e-4 is clipped to DN 1 before 04.00
    for name in ("naip", "s2"):
        np.testing.assert_array_equal(pc[f"{name}_present"], es[f"{name}_present"])
        np.testing.assert_allclose(es[name], pc[name], rtol=0, atol=1e-4, err_msg=name)
    assert not es["s1_present"].any()
    # NAIP: the world's 5 m pixels against the catalogs' 1.0/0.6/0.3 m surveys read back at 5 m (through the
    # COGs' overviews and average resampling): the same image up to resampling, not the same pixels
    for i in np.flatnonzero(pc["naip_present"]):
        diff = np.abs(pc["naip"][i] - world["naip"][i])  # [4 64 64] normalised units (std ~0.15 of 1/255 DNs)
        corr = np.corrcoef(pc["naip"][i].ravel(), world["naip"][i].ravel())[0, 1]
        assert np.median(diff) < 0.05 and corr > 0.98, (i, float(np.median(diff)), corr)  # ~1 DN; 0.99+ seen


def _representable(s2: np.ndarray) -> np.ndarray:
    """[N B H W] normalised S2 chips -> where the reflectance is above what a pre-04.00 DN of 1 holds."""
    from jointssl.sensors import load_preset

    bands = load_preset("planetary-computer")["sentinel-2-l2a"].bands
    mean = np.array([b.mean for b in bands])[None, :, None, None]
    std = np.array([b.std for b in bands])[None, :, None, None]
    return s2 * std + mean > 1.5e-4


def test_pre_baseline_era_dns_carry_no_offset(dialects):
    """The same reflectance: DN + 1000 in the 05.10 era, DN in the 02.12 era (a clipped DN near 0 aside)."""
    import rasterio

    def dn(published: Published, item: dict) -> np.ndarray:
        with rasterio.open(item["assets"]["B04"]["href"]) as src:
            return src.read(1).astype(np.int64)

    world = {i["id"]: i for i in dialects["world"].items["sentinel-2-l2a"]}
    for item in dialects["planetary-computer"].items["sentinel-2-l2a"][:4]:
        pc_dn, world_dn = dn(dialects["planetary-computer"], item), dn(dialects["world"], world[item["id"]])
        shift = 1000 if item["properties"]["s2:processing_baseline"] == "05.10" else 0
        valid = (world_dn > 1001)
        np.testing.assert_array_equal(pc_dn[valid] + (1000 - shift), world_dn[valid])


def test_an_unknown_dialect_is_refused_at_the_edge():
    with pytest.raises(ConfigError, match="dialect"):
        load_job_config("configs/test.yaml", ["--world.dialect", "usgs"])


def _probabilities(model, published: Published, modalities: list) -> np.ndarray:
    from jointssl.train.loop import to_tensors

    batch = ChipBatchLoader(modalities)(published.table)
    return model.predict_proba(to_tensors(batch, model.inputs))  # [N K]


@pytest.mark.parametrize(("trained_on", "runs_on", "names"), [
    ("world", "planetary-computer", ["s2", "s1"]),     # S2 of both eras, S1 RTC with PC's time forms
    ("planetary-computer", "earth-search", ["naip", "s2"]),  # Earth Search has no RTC: GRD is refused
])
def test_a_classifier_trained_on_one_dialect_predicts_the_same_on_another(dialects, trained_on, runs_on, names):
    """Chips read through each dialect's own preset are the same physical values, so one model gives the same
    probabilities; the physical sensor contracts of the two presets agree (nothing to refuse)."""
    from jointssl.sensors import load_preset, select
    from jointssl.sensors.contract import check_classifier, differences, sensor_contract
    from tests.infer.classifier import build_classifier

    trained = select(load_preset(trained_on, roots=[str(dialects[trained_on].root)]), names)  # hrefs: its world
    reading = select(load_preset(runs_on, roots=[str(dialects[runs_on].root)]), names)
    assert differences(sensor_contract(trained), sensor_contract(reading)) == []
    model = build_classifier(dialects[trained_on].table, trained, steps=50)
    assert check_classifier(model.sensors, reading) == []
    expected = _probabilities(model, dialects[trained_on], trained)
    got = _probabilities(model, dialects[runs_on], reading)
    assert expected.shape == (SITES, len(model.classes))
    assert np.ptp(expected, axis=0).max() > 1e-3  # the sites get different answers: a comparison that can fail
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
