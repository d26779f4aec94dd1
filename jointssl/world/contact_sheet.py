"""A PNG contact sheet of the world: one row per class, one column per view a human checks.

Columns: NAIP true colour, Sentinel-2 true colour (B04/B03/B02), Sentinel-2 SWIR composite
(B12/B8A/B04: coal, tanks, flares and wet ground stand out), Sentinel-1 VV/VH false colour
(R = VV, G = VH, B = VV/VH). The view's bands are looked up by name in the sensor preset.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from jointssl import storage
from jointssl.labels import CLASS_TITLES, FACILITY_CLASSES, NEGATIVE
from jointssl.sensors import load_preset
from jointssl.sensors.spec import Modality
from jointssl.world.reader import WorldReader, read_asset

COLUMNS = ("NAIP RGB", "S2 true colour", "S2 SWIR (B12/B8A/B04)", "S1 VV/VH")


def contact_sheet(world_url: str, png_url: str, per_class: int = 1) -> str:
    """Render the sheet for the world at ``world_url`` to ``png_url``; returns ``png_url``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reader = WorldReader(world_url)
    preset = load_preset("world")
    aerial, optical, sar = (c for c in preset)  # preset order: naip, sentinel-2-l2a, sentinel-1-rtc
    sites = reader.sites()
    labelled = sites[sites["labelled"]]
    rows: list[tuple[str, str]] = []
    for cls in (*FACILITY_CLASSES, NEGATIVE):
        want = [] if cls == NEGATIVE else [cls]
        match = [s for s, lab in zip(labelled["site_id"], labelled["labels"]) if list(lab) == want]
        rows += [(cls, s) for s in match[:per_class]]
    fig, axes = plt.subplots(len(rows), len(COLUMNS), figsize=(3.0 * len(COLUMNS), 3.0 * len(rows)))
    axes = np.atleast_2d(axes)
    for r, (cls, site_id) in enumerate(rows):
        s2 = reader.least_cloudy(optical, site_id)
        views = [
            _stretch(read_asset(reader.site_items(aerial, site_id)[0], "image")[:3]),
            _stretch(np.stack([_band(s2, preset[optical], n) for n in ("B04", "B03", "B02")])),
            _stretch(_stack_resampled([_band(s2, preset[optical], n) for n in ("B12", "B8A", "B04")])),
            _sar_false_colour(reader.site_items(sar, site_id)[0], preset[sar]),
        ]
        for c, view in enumerate(views):
            ax = axes[r, c]
            ax.imshow(view, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(COLUMNS[c], fontsize=10)
            if c == 0:
                ax.set_ylabel(f"{CLASS_TITLES[cls]}\n{site_id}", fontsize=9)
        props = s2["properties"]
        axes[r, 1].set_xlabel(f"cloud {props.get('eo:cloud_cover', 0):.0f}% {props['datetime'][:10]}", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    fs, path = storage.filesystem(png_url)
    if not storage.is_remote(png_url):
        import os

        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with fs.open(path, "wb") as fh:
        fh.write(buffer.getvalue())
    return png_url


def _band(item: dict[str, Any], modality: Modality, name: str) -> np.ndarray:
    band = next(b for b in modality.bands if b.name == name)
    first: np.ndarray = read_asset(item, band.asset)[0]  # [h w]
    return first


def _stack_resampled(bands: list[np.ndarray]) -> np.ndarray:
    """[B] of [h_i w_i] -> [B H W] at the finest grid (nearest-neighbour repeat)."""
    size = max(b.shape[0] for b in bands)
    stacked: np.ndarray = np.stack([np.kron(b, np.ones((size // b.shape[0], size // b.shape[1]))) for b in bands])
    return stacked


def _stretch(rgb: np.ndarray) -> np.ndarray:
    """[3 H W] -> [H W 3] in [0, 1], 2-98 % stretch per image (NaN shown black)."""
    finite = rgb[np.isfinite(rgb)]
    lo, hi = (np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0))
    out = np.clip((rgb - lo) / max(hi - lo, 1e-6), 0, 1)
    stretched: np.ndarray = np.nan_to_num(np.moveaxis(out, 0, -1))  # [H W 3]
    return stretched


def _sar_false_colour(item: dict[str, Any], modality: Modality) -> np.ndarray:
    vv, vh = (10 * np.log10(np.maximum(read_asset(item, b.asset)[0], 1e-6)) for b in modality.bands[:2])
    rgb = np.stack([(vv + 25) / 25, (vh + 30) / 25, np.clip((vv - vh) / 15, 0, 1)])
    clipped: np.ndarray = np.clip(np.moveaxis(rgb, 0, -1), 0, 1)  # [H W 3]
    return clipped
