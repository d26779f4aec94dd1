"""The ``stackstac`` chip reader: single-band assets through stackstac and dask's threaded scheduler.

One of the two readers behind :func:`jointssl.data.chips.read_chip` (``chips.reader: stackstac``); the
other, windowed rasterio reads, also serves multi-band assets (NAIP's 4-band ``image``) that stackstac
cannot read. dask runs threaded, never a nested distributed scheduler inside a Ray task.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from jointssl import storage
from jointssl.data.window_read import ChipGrid, read_window
from jointssl.sensors.spec import Modality
from jointssl.stac.items import Item, asset_href, with_epsg


def read_stackstac(item: Item, modality: Modality, grid: ChipGrid, sign: Callable[[str], str]) -> np.ndarray:
    """The stored values [C H W] of the modality's bands over ``grid`` (signed hrefs, no rescaling)."""
    import stackstac
    from rasterio.enums import Resampling

    signed = with_epsg(item)
    signed["assets"] = {k: {**v, "href": sign(v["href"])} for k, v in signed["assets"].items() if "href" in v}
    fill = np.dtype(modality.dtype).type(modality.nodata if modality.nodata is not None else 0)
    stack = stackstac.stack(
        [signed], assets=modality.assets, epsg=grid.epsg, resolution=grid.gsd, bounds=grid.bounds,
        snap_bounds=False, dtype=np.dtype(modality.dtype), fill_value=fill, rescale=False,
        resampling=Resampling.nearest, chunksize=grid.size, gdal_env=_stackstac_env(),
    )
    with storage.rasterio_env():
        array: np.ndarray = stack.compute(scheduler="threads").values  # [T=1 C H W]
    chip: np.ndarray = array[0]  # [C H W]
    return chip


def quality_mask(item: Item, modality: Modality, grid: ChipGrid, sign: Callable[[str], str]) -> np.ndarray:
    """[H W] bool: pixels the modality's quality asset does not reject (all True without one)."""
    valid = np.ones((grid.size, grid.size), dtype=bool)
    if modality.quality is None:
        return valid
    classes = read_window(sign(asset_href(item, modality.quality.asset)), [1], grid, "nearest", 0)[0]
    return valid & ~np.isin(classes, modality.quality.reject)


def _stackstac_env() -> Any:
    from stackstac import LayeredEnv

    return LayeredEnv(always=storage.gdal_env())
