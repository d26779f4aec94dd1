"""Read a sites table (GeoParquet, GeoJSON or CSV) into one normalised frame.

Columns after reading: ``site_id`` (str), ``lon``/``lat`` (the site's representative point, EPSG:4326),
``labels`` (list of class names; empty = unlabelled or negative, see ``labelled``), ``labelled`` (bool),
``split`` (train/val/test/unlabelled), ``start``/``end`` (optional ISO dates bounding the acquisitions).
Polygons are reduced to a point inside them. Every problem names the file and the column to fix.

``labels`` may be a list or a string separated by ``;``, ``|`` or ``,``; class names are jointssl's
(:data:`jointssl.labels.FACILITY_CLASSES`) or METER-ML's (``CAFOs``, ``Landfills``, ``Mines``,
``ProcessingPlants``, ``RefineriesAndTerminals``, ``WWTreatment``, ``Negatives`` and the short titles of
its tables), case- and punctuation-insensitive; an unknown name is an error naming the site and the name.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from jointssl import storage
from jointssl.errors import JointsslError
from jointssl.labels import CLASS_TITLES, FACILITY_CLASSES, NEGATIVE

COLUMNS = ["site_id", "lon", "lat", "labels", "labelled", "split", "start", "end"]


def read_sites(url: str) -> pd.DataFrame:
    suffix = PurePosixPath(url.split("?")[0]).suffix.lower()
    readers = {".parquet": _read_geoparquet, ".geoparquet": _read_geoparquet, ".geojson": _read_geojson,
               ".json": _read_geojson, ".csv": _read_csv}
    if suffix not in readers:
        raise JointsslError(f"sites file {url} has an unknown format {suffix!r}", hint="use .parquet, .geojson or .csv")
    fs, path = storage.filesystem(url)
    if not fs.exists(path):
        raise JointsslError(f"sites file {url} does not exist", hint="run 'jointssl world' first, or set index.sites")
    try:
        with fs.open(path, "rb") as handle:
            frame = readers[suffix](handle)
    except JointsslError:
        raise
    except Exception as err:
        raise JointsslError(f"cannot read sites file {url}: {type(err).__name__}: {err}") from None
    return normalise(frame, url)


def normalise(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    if "site_id" not in frame.columns:
        raise JointsslError(f"sites file {source} has no 'site_id' column", hint="name each site in a site_id column")
    if frame.empty:
        raise JointsslError(f"sites file {source} holds no sites")
    out = pd.DataFrame({"site_id": frame["site_id"].astype(str)})
    if out["site_id"].duplicated().any():
        dup = out.loc[out["site_id"].duplicated(), "site_id"].iloc[0]
        raise JointsslError(f"sites file {source} repeats site_id {dup!r}", hint="site ids must be unique")
    out["lon"] = pd.to_numeric(frame["lon"], errors="coerce").to_numpy()
    out["lat"] = pd.to_numeric(frame["lat"], errors="coerce").to_numpy()
    bad = ~(out["lon"].between(-180, 180) & out["lat"].between(-90, 90))
    if bad.any():
        raise JointsslError(
            f"sites file {source}: site {out.loc[bad, 'site_id'].iloc[0]!r} has no valid lon/lat",
            hint="give points in EPSG:4326 (longitude -180..180, latitude -90..90)",
        )
    labels = frame["labels"] if "labels" in frame.columns else pd.Series([None] * len(frame))
    out["labels"] = [_labels_of(v, site, source) for v, site in zip(labels, out["site_id"], strict=True)]
    if "labelled" in frame.columns:
        out["labelled"] = frame["labelled"].astype(bool).to_numpy()
    else:
        out["labelled"] = [not _missing(v) for v in labels]
    out["split"] = _splits(frame, out["site_id"], source)
    for column in ("start", "end"):
        out[column] = frame[column].astype(str).where(frame[column].notna(), None) if column in frame.columns else None
    return out[COLUMNS].reset_index(drop=True)


def _read_geoparquet(handle: Any) -> pd.DataFrame:
    import geopandas as gpd

    return _with_lonlat(gpd.read_parquet(handle))


def _read_geojson(handle: Any) -> pd.DataFrame:
    import geopandas as gpd

    return _with_lonlat(gpd.read_file(handle))


def _read_csv(handle: Any) -> pd.DataFrame:
    frame = pd.read_csv(handle)
    missing = [c for c in ("lon", "lat") if c not in frame.columns]
    if missing:
        raise JointsslError(f"CSV sites need lon and lat columns; missing: {', '.join(missing)}")
    return frame


def _with_lonlat(gdf: Any) -> pd.DataFrame:
    if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs(4326)
    points = gdf.geometry.representative_point()
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    frame["lon"], frame["lat"] = points.x.to_numpy(), points.y.to_numpy()
    return frame


SPLITS = ("train", "val", "test", "unlabelled")


def _splits(frame: pd.DataFrame, site_ids: pd.Series, source: str) -> list[str]:
    """The split column (missing or empty: 'unlabelled'), every value one of SPLITS."""
    if "split" not in frame.columns:
        return ["unlabelled"] * len(frame)
    out = ["unlabelled" if _missing(v) or str(v).strip() == "" else str(v).strip().lower() for v in frame["split"]]
    for site, split in zip(site_ids, out, strict=True):
        if split not in SPLITS:
            raise JointsslError(f"sites file {source}: site {site!r} has split {split!r}",
                                hint=f"use one of {', '.join(SPLITS)}")
    return out


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


LABEL_NAMES: dict[str, str] = {
    **{_key(c): c for c in FACILITY_CLASSES}, **{_key(t): c for c, t in CLASS_TITLES.items()},
    # METER-ML's folder / column names (Zhu et al. 2022, arXiv:2207.11166)
    "cafos": "cafo", "landfills": "landfill", "mines": "coal_mine", "coalmines": "coal_mine",
    "processingplants": "gas_processing", "naturalgasprocessingplants": "gas_processing",
    "refineriesandterminals": "refinery_terminal", "rts": "refinery_terminal", "wwtreatment": "wastewater",
    "wastewatertreatmentplants": "wastewater", "wwtps": "wastewater", "negatives": NEGATIVE,
}
"""Accepted class names, by their lower-case letters and digits -> jointssl class (or 'negative')."""


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and bool(np.isnan(value)))


def _labels_of(value: object, site: str, source: str) -> list[str]:
    """A cell of the labels column -> jointssl class names ([] for none or a negative)."""
    if _missing(value):
        return []
    if isinstance(value, str):
        names = [v.strip() for v in value.replace(";", "|").replace(",", "|").split("|")]
    elif isinstance(value, (list, tuple, np.ndarray)):
        names = [str(v).strip() for v in value]
    else:
        raise JointsslError(f"sites file {source}: site {site!r} has labels {value!r} ({type(value).__name__})",
                            hint="give labels as a list or a ';'-separated string of class names")
    out = []
    for name in names:
        if not name:
            continue
        cls = LABEL_NAMES.get(_key(name))
        if cls is None:
            raise JointsslError(f"sites file {source}: site {site!r} has unknown class {name!r}",
                                hint=f"use one of {', '.join(FACILITY_CLASSES)} or {NEGATIVE!r} "
                                     "(METER-ML names such as CAFOs, Landfills, Mines are mapped)")
        if cls != NEGATIVE and cls not in out:
            out.append(cls)
    return out
