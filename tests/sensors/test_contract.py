"""Sensor contracts: one model across catalogs where the sensors are the same measurements, and every real
difference listed where they are not."""

from __future__ import annotations

import dataclasses
import json

from jointssl.sensors import load_preset
from jointssl.sensors.contract import (
    check_classifier,
    classifier_contract,
    differences,
    from_dict,
    sensor_contract,
    to_dict,
)


def contract(preset: str, names=("naip", "s2", "s1")):
    modalities = {m.name: m for m in load_preset(preset).values()}
    return sensor_contract([modalities[n] for n in names])


def test_same_sensors_under_other_asset_keys_run_unchanged():
    world = contract("world")
    assert differences(world, contract("planetary-computer")) == []
    # Earth Search names S2 assets by common name; the measurements are the same
    assert differences(world, contract("earth-search", ("naip", "s2"))) == []


def test_grd_for_rtc_is_a_listed_difference():
    problems = differences(contract("world"), contract("earth-search"))
    assert problems == ["s1: product is 'sentinel-1-grd', the model was trained on 'sentinel-1-rtc'"]


def test_each_real_difference_is_listed():
    s2 = load_preset("planetary-computer")["sentinel-2-l2a"]
    no_coastal = dataclasses.replace(s2, bands=s2.bands[1:])
    problems = differences(contract("world", ("s2",)), sensor_contract([no_coastal]))
    assert "s2: band B01 (coastal, 0.443 µm, 60 m) is missing" in problems
    assert any("channel 0, the model reads it as channel 1" in p for p in problems)  # B02 moved
    naip = load_preset("planetary-computer")["naip"]
    coarser = dataclasses.replace(naip, target_gsd_m=10.0)
    assert differences(contract("world", ("naip",)), sensor_contract([coarser])) == [
        "naip: target_gsd_m is 10.0, the model was trained on 5.0"]
    swapped = dataclasses.replace(naip, bands=[naip.bands[0], naip.bands[1], naip.bands[2],
                                               dataclasses.replace(naip.bands[3], common_name="rededge",
                                                                   center_wavelength_um=0.705)])
    problems = differences(contract("world", ("naip",)), sensor_contract([swapped]))
    assert any("nir" in p and "missing" in p for p in problems)
    assert any("rededge" in p and "not one the model reads" in p for p in problems)


def test_contract_round_trips_through_json():
    world = contract("world")
    assert from_dict(json.loads(json.dumps(to_dict(world)))) == world


def test_a_classifier_contract_accepts_subsets_and_names_mismatches():
    world = list(load_preset("world").values())
    trained = classifier_contract("world", world)
    assert check_classifier(trained, world[:1]) == []
    smaller = dataclasses.replace(world[0], chip_size=world[0].chip_size // 2)
    problems = check_classifier(trained, [smaller, dataclasses.replace(world[1], name="x")])
    assert any("chip_size" in p for p in problems) and any(p.startswith("x: not a modality") for p in problems)
    # classifiers registered before the physical contract are checked by band name, chip size and GSD
    legacy = {k: v for k, v in trained.items() if k != "physical"}
    problems = check_classifier(legacy, [smaller, dataclasses.replace(world[1], name="x")])
    assert any("chip_size" in p for p in problems) and any("'x'" in p for p in problems)


def test_a_classifier_of_one_catalog_reads_another_by_what_its_bands_are():
    world = list(load_preset("world").values())
    trained = classifier_contract("world", world)
    pc = list(load_preset("planetary-computer").values())
    assert check_classifier(trained, pc) == []
    es = {m.name: m for m in load_preset("earth-search").values()}
    assert check_classifier(trained, [es["naip"], es["s2"]]) == []
    assert check_classifier(trained, [es["s1"]]) == [
        "s1: product is 'sentinel-1-grd', the model was trained on 'sentinel-1-rtc'"]
