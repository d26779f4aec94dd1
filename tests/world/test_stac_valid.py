"""The world's STAC is valid as published: every item, collection and the root catalog validate against
the STAC 1.1 core JSON schemas, read from the copies pystac ships (no network: a schema that is not
local is an error, never a download). Extension schemas (proj, eo, raster, sat, sar) are not checked
here: pystac would fetch them."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest


def validator(kind: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from pystac.validation.local_validator import LocalValidator

        local = LocalValidator()
    return getattr(local, f"{kind}_validator")("1.1.0")


def errors(kind: str, document: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(kind).iter_errors(document)]


def test_items_collections_and_root_validate(tiny_world):
    stac = Path(tiny_world.url) / "stac"
    root = json.loads((stac / "catalog.json").read_text())
    assert errors("catalog", root) == []
    for path in sorted((stac / "collections").glob("*.json")):
        collection = json.loads(path.read_text())
        assert errors("collection", collection) == [], path.name
        assert {link["rel"] for link in collection["links"]} >= {"self", "root", "parent"}
    items = [json.loads(line) for path in sorted((stac / "items").glob("*.ndjson"))
             for line in path.read_text().splitlines()]
    assert items
    for item in items:
        assert errors("item", item) == [], item["id"]
        rels = {link["rel"]: link["href"] for link in item["links"]}
        assert rels["collection"] == rels["parent"] == tiny_world.collections[item["collection"]]
        assert rels["root"].endswith("stac/catalog.json")


def test_an_item_with_a_collection_but_no_links_is_invalid(tiny_world):
    """What the world wrote before (a 'collection' field with "links": []) is what the schema refuses."""
    stac = Path(tiny_world.url) / "stac"
    item = json.loads(next((stac / "items").glob("*.ndjson")).read_text().splitlines()[0])
    assert errors("item", {**item, "links": []})


def test_the_recorded_catalog_items_are_valid_stac_1_0_and_schemas_stay_local():
    """Validation never downloads: the recorded items (STAC 1.0.0) validate against the local 1.1 core
    schema after the version bump pystac's migration would make, and an unknown $ref is an error."""
    from referencing.exceptions import Unresolvable

    corpus = Path(__file__).parents[1] / "data" / "real-catalogs"
    for path in sorted(corpus.glob("*.json")):
        item = {**json.loads(path.read_text()), "stac_version": "1.1.0"}
        assert errors("item", item) == [], path.name
    bogus = validator("item")
    with pytest.raises(Unresolvable):
        bogus.evolve(schema={"$ref": "https://example.invalid/schema.json"}).validate({})
