"""Derive the committed sites sample ``jointssl/world/data/ghgrp_sites.csv`` from the EPA GHGRP file.

Run once by a developer (the package never reads ../shared at run time)::

    python scripts/derive_sites_sample.py [../shared/data/ghgrp_2018_methane_source_facilities.geojson]

GHGRP methane source categories map onto METER-ML's facility classes (jointssl.labels):

=======================================  ===================  =====================================
GHGRP category                           jointssl class       why
=======================================  ===================  =====================================
msw_landfill, industrial_landfill        landfill             METER-ML "Landfills"
underground_coal_mine                    coal_mine            METER-ML "Coal Mines"
natural_gas_processing                   gas_processing       METER-ML "Proc Plants"
petroleum_refinery                       refinery_terminal    METER-ML "R&Ts"
lng_import_export, lng_storage           refinery_terminal    terminals: tank farms at a shoreline
industrial_wastewater                    wastewater           METER-ML "WWTPs"
natural_gas_transmission_compression,    (rural location)     not a METER-ML class; compressor and
natural_gas_underground_storage                               storage sites lie along pipelines in
                                                              rural country, so their coordinates
                                                              seed CAFO and negative sites (offset)
=======================================  ===================  =====================================

A facility reporting several mapped categories keeps all of them (multi-label, as in METER-ML).
The sample keeps every site of the rare classes and a deterministic subsample of the common ones.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

CATEGORY_TO_CLASS = {
    "msw_landfill": "landfill",
    "industrial_landfill": "landfill",
    "underground_coal_mine": "coal_mine",
    "natural_gas_processing": "gas_processing",
    "petroleum_refinery": "refinery_terminal",
    "lng_import_export": "refinery_terminal",
    "lng_storage": "refinery_terminal",
    "industrial_wastewater": "wastewater",
}
RURAL_CATEGORIES = {"natural_gas_transmission_compression", "natural_gas_underground_storage"}
MAX_PER_GROUP = 300  # per class (and for the rural pool): enough variety, ~60 KB of CSV
CONUS = (-125.0, 24.0, -66.5, 49.5)  # lower 48 only: keeps UTM zones 10-19 and temperate scenes

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "ghgrp_2018_methane_source_facilities.geojson"
TARGET = ROOT / "jointssl" / "world" / "data" / "ghgrp_sites.csv"


def main(argv: list[str]) -> int:
    source = Path(argv[0]) if argv else DEFAULT_SOURCE
    features = json.loads(source.read_text())["features"]
    rows: dict[str, list[dict[str, object]]] = {}
    for feature in sorted(features, key=lambda f: int(f["properties"]["ghgrp_facility_id"])):
        props = feature["properties"]
        lon, lat = feature["geometry"]["coordinates"]
        if not (CONUS[0] <= lon <= CONUS[2] and CONUS[1] <= lat <= CONUS[3]):
            continue
        categories = props["methane_source_categories"]
        classes = sorted({CATEGORY_TO_CLASS[c] for c in categories if c in CATEGORY_TO_CLASS})
        if classes:
            group = classes[0] if len(classes) == 1 else "multi"
        elif RURAL_CATEGORIES & set(categories):
            group = "rural"
        else:
            continue
        rows.setdefault(group, []).append(
            {
                "ghgrp_id": props["ghgrp_facility_id"],
                "lon": round(lon, 5),
                "lat": round(lat, 5),
                "state": props["state"],
                "classes": ";".join(classes),
                "categories": ";".join(categories),
            }
        )
    kept: list[dict[str, object]] = []
    for group in sorted(rows):
        members = rows[group]
        step = max(1, len(members) // MAX_PER_GROUP)
        kept.extend(members[::step][:MAX_PER_GROUP])
        print(f"{group:18s} {len(members):5d} facilities -> {len(members[::step][:MAX_PER_GROUP]):4d} kept")
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    with TARGET.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(kept[0]))
        writer.writeheader()
        writer.writerows(kept)
    print(f"wrote {len(kept)} sites to {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
