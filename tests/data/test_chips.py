"""Chips: the loader's pixels equal a direct rasterio read of the same window; bad data is a counted skip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from jointssl.data.chips import Chip, ChipSkip, chip_grid, read_chip
from jointssl.sensors import Band, Modality
from tests.support.rasters import BBOX, EPSG, LAT, LON, ORIGIN, s2_like, write_cog


def direct(href: str, grid, out: int, resampling: str = "nearest") -> np.ndarray:
    from rasterio.enums import Resampling
    from rasterio.windows import from_bounds

    with rasterio.open(href) as src:
        window = from_bounds(*grid.bounds, transform=src.transform)
        return src.read(1, window=window, out_shape=(out, out), resampling=Resampling[resampling])


@pytest.mark.parametrize("reader", ["rasterio", "stackstac"])
def test_chip_equals_direct_rasterio_read(tmp_path, reader):
    modality, item = s2_like(tmp_path, np.random.default_rng(0))
    chip = read_chip(item, modality, LON, LAT, reader=reader)
    assert isinstance(chip, Chip), chip
    assert chip.pixels.shape == (2, 32, 32) and chip.pixels.dtype == np.float32
    grid = chip_grid(item, modality, LON, LAT)
    assert grid.bounds[2] - grid.bounds[0] == 320 and grid.bounds[0] % 10 == 0
    expected_b04 = (direct(item["assets"]["B04"]["href"], grid, 32) * 1e-4 - 0.1 - 0.1) / 0.05
    expected_b11 = (direct(item["assets"]["B11"]["href"], grid, 32) * 1e-4 - 0.1 - 0.2) / 0.05
    np.testing.assert_allclose(chip.pixels[0], expected_b04, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(chip.pixels[1], expected_b11, rtol=1e-5, atol=1e-4)
    assert chip.valid.all()
    # the 20 m band is repeated 2x2 onto the 10 m grid, not interpolated
    assert len(np.unique(chip.pixels[1][:2, :2])) == 1 or (grid.bounds[0] % 20 != 0)


def test_item_raster_bands_scaling_wins_over_the_preset(tmp_path):
    modality, item = s2_like(tmp_path, np.random.default_rng(1))
    item["assets"]["B04"]["raster:bands"] = [{"scale": 2e-4, "offset": 0.0, "nodata": 0}]
    chip = read_chip(item, modality, LON, LAT)
    grid = chip_grid(item, modality, LON, LAT)
    expected = (direct(item["assets"]["B04"]["href"], grid, 32) * 2e-4 - 0.1) / 0.05
    np.testing.assert_allclose(chip.pixels[0], expected, rtol=1e-5, atol=1e-4)


def test_multiband_asset_is_averaged_down(tmp_path):
    rng = np.random.default_rng(2)
    image = rng.integers(1, 255, size=(4, 1280, 1280), dtype=np.uint8)  # NAIP-like, 1 m, one 4-band asset
    item = {"id": "naip-test", "bbox": BBOX, "properties": {"datetime": "2022-07-01T00:00:00Z", "proj:epsg": EPSG},
            "assets": {"image": {"href": write_cog(tmp_path / "naip.tif", image, 1.0, 0)}}}
    modality = Modality(name="naip", collection="naip", dtype="uint8", nodata=0, scale=1 / 255, target_gsd_m=5,
                        chip_size=64, allowed_hrefs=[str(tmp_path)],
                        bands=[Band(n, "image", index=i + 1, native_gsd_m=1.0, mean=0.0, std=1.0)
                               for i, n in enumerate(["red", "green", "blue", "nir"])])
    for reader in ("rasterio", "stackstac"):  # stackstac cannot read multi-band assets: rasterio serves both
        chip = read_chip(item, modality, LON, LAT, reader=reader)
        assert isinstance(chip, Chip) and chip.pixels.shape == (4, 64, 64)
        grid = chip_grid(item, modality, LON, LAT)
        expected = direct(item["assets"]["image"]["href"], grid, 64, "average") / 255
        np.testing.assert_allclose(chip.pixels[0], expected, rtol=1e-5, atol=1e-5)
        assert chip.pixels[0].std() < image[0].std() / 255 / 2  # averaging 25 pixels smooths noise


def test_quality_mask_marks_clouds_invalid_and_zeroes_them(tmp_path):
    modality, item = s2_like(tmp_path, np.random.default_rng(3), scl_value=9)  # all cloud
    skip = read_chip(item, modality, LON, LAT)
    assert isinstance(skip, ChipSkip) and skip.reason == "all_nodata"


def test_partial_clouds_are_masked(tmp_path):
    modality, item = s2_like(tmp_path, np.random.default_rng(4))
    grid = chip_grid(item, modality, LON, LAT)
    with rasterio.open(item["assets"]["SCL"]["href"], "r+") as dst:
        scl = dst.read(1)
        row, col = dst.index(grid.bounds[0] + 5, grid.bounds[3] - 5)
        scl[row:row + 4, col:col + 4] = 8
        dst.write(scl, 1)
    chip = read_chip(item, modality, LON, LAT)
    assert isinstance(chip, Chip)
    assert 0 < (~chip.valid).sum() < chip.valid.size and (chip.pixels[:, ~chip.valid] == 0).all()


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [("missing_asset", "missing_asset"), ("wrong_crs", "crs_mismatch"), ("missing_file", "missing_file"),
     ("corrupt_file", "corrupt_file"), ("all_nodata", "all_nodata"), ("nan", "nan"),
     ("no_projection", "no_projection")],
)
def test_bad_data_is_a_counted_skip_with_its_reason(tmp_path, breakage, reason):
    modality, item = s2_like(tmp_path, np.random.default_rng(5))
    if breakage == "missing_asset":
        del item["assets"]["B11"]
    elif breakage == "missing_file":
        item["assets"]["B04"]["href"] = str(tmp_path / "gone.tif")
    elif breakage == "corrupt_file":
        data = Path(item["assets"]["B04"]["href"]).read_bytes()  # header intact, tiles cut off
        Path(item["assets"]["B04"]["href"]).write_bytes(data[: len(data) // 3])
    elif breakage == "all_nodata":
        write_cog(Path(item["assets"]["B04"]["href"]), np.zeros((1, 128, 128), np.uint16), 10, 0)
        write_cog(Path(item["assets"]["B11"]["href"]), np.zeros((1, 64, 64), np.uint16), 20, 0)
    elif breakage == "nan":
        modality = Modality(name="s1", collection="sentinel-1-rtc", dtype="float32", nodata=-32768.0, transform="db",
                            target_gsd_m=10, chip_size=32, allowed_hrefs=[str(tmp_path)],
                            bands=[Band("vv", "vv", native_gsd_m=10)])
        item["assets"] = {"vv": {"href": write_cog(tmp_path / "vv.tif", np.full((1, 128, 128), np.nan, np.float32),
                                                   10, -32768.0)}}
    elif breakage == "wrong_crs":
        item["properties"]["proj:code"] = "EPSG:32615"
    elif breakage == "no_projection":
        item["properties"].pop("proj:code")
    result = read_chip(item, modality, LON, LAT)
    assert isinstance(result, ChipSkip), result
    assert result.reason == reason, result.detail


def test_read_threads_follow_the_store_and_map_reads_keeps_order():
    import threading

    from jointssl.data.chips import LOCAL_READ_THREADS, REMOTE_READ_THREADS, WindowRead, map_reads, read_threads

    assert read_threads(["/data/a.tif", "file:///data/b.tif"]) == LOCAL_READ_THREADS == 1
    assert read_threads(["/data/a.tif", "s3://bucket/b.tif"]) == REMOTE_READ_THREADS
    assert read_threads(["https://host/c.tif"]) == read_threads(["/vsis3/bucket/d.tif"]) == REMOTE_READ_THREADS
    assert read_threads(["s3://bucket/b.tif"], threads=3) == 3
    jobs = [(i, WindowRead("B04", href, [1], "nearest")) for i, href in enumerate(["/a.tif"] * 5)]
    seen: set[int] = set()

    def work(job):
        seen.add(threading.get_ident())
        return job[0] * 10

    assert map_reads(work, jobs) == [0, 10, 20, 30, 40] and seen == {threading.get_ident()}  # local: this thread
    seen.clear()
    remote = [(i, WindowRead("B04", "s3://b/k.tif", [1], "nearest")) for i in range(5)]
    assert map_reads(work, remote) == [0, 10, 20, 30, 40] and threading.get_ident() not in seen  # a pool's threads


def test_windows_of_one_file_from_one_open_equal_separate_reads(tmp_path, monkeypatch):
    from jointssl.data import window_read

    modality, item = s2_like(tmp_path, np.random.default_rng(7))
    href = item["assets"]["B11"]["href"]  # 20 m band read onto the 10 m grid
    grids = [chip_grid(item, modality, LON + dx, LAT + dy) for dx, dy in [(0, 0), (0.002, 0.001), (-0.004, 0.003)]]
    grids.append(chip_grid(item, modality, LON + 0.0068, LAT))  # half outside the file: boundless
    separate = [window_read.read_window(href, [1], g, "nearest", 0) for g in grids]
    opens = []

    class Counted(rasterio.io.DatasetReader):
        def __init__(self, path, *args, **kwargs):
            opens.append(path)
            super().__init__(path, *args, **kwargs)

    monkeypatch.setattr(rasterio.io, "DatasetReader", Counted)
    together = window_read.read_windows(href, [1], grids, "nearest", 0)
    assert len(opens) == 1
    for one, other in zip(separate, together):
        np.testing.assert_array_equal(one, other)
    assert (together[3][0, :, -4:] == 0).all() and (together[3][0, :, :4] > 0).all()  # filled past the edge


@pytest.mark.parametrize("resampling", ["nearest", "average"])
def test_inside_reads_equal_rasterios_read(tmp_path, resampling):
    """The loader's read of a window inside the raster (rasterio's ``_read``, without ``read``'s per-call
    bookkeeping) equals ``read``: whole and fractional windows, one band and several, same and coarser
    output grids; and without ``_read`` (another rasterio) it is ``read`` itself."""
    from types import SimpleNamespace

    from rasterio.enums import Resampling
    from rasterio.windows import Window

    from jointssl.data import window_read

    image = np.random.default_rng(13).integers(1, 4000, size=(3, 640, 640), dtype=np.uint16)
    href = write_cog(tmp_path / "bands.tif", image, 1.0, 0)
    windows = [(Window(0, 0, 640, 640), 64), (Window(100, 37, 320, 320), 64), (Window(10.5, 20.25, 64, 64), 32),
               (Window(576, 576, 64, 64), 64), (Window(3, 5, 32, 32), 64)]  # last: finer than the source
    with rasterio.open(href) as src:
        for indexes in ([1], [3, 1], [1, 2, 3]):
            for window, size in windows:
                shape = (len(indexes), size, size)
                expected = src.read(indexes, window=window, out_shape=shape, resampling=Resampling[resampling])
                got = window_read._read_inside(src, indexes, window, shape, resampling)
                assert got.dtype == expected.dtype == np.uint16
                np.testing.assert_array_equal(got, expected)
                public = SimpleNamespace(read=src.read, dtypes=src.dtypes)  # a reader without _read
                inside = window_read._read_inside(public, indexes, window, shape, resampling)
                np.testing.assert_array_equal(inside, expected)


def _boundless(href: str, indexes: list[int], grid, resampling: str, fill: float) -> np.ndarray:
    """rasterio's own boundless read of the grid's window (a VRT around the file)."""
    from rasterio.enums import Resampling

    from jointssl.data.window_read import _window

    with rasterio.open(href) as src:
        return src.read(indexes, window=_window(src.transform, grid.bounds), boundless=True, fill_value=fill,
                        out_shape=(len(indexes), grid.size, grid.size), resampling=Resampling[resampling])


@pytest.mark.parametrize("asset", ["B04", "B11"])
def test_windows_past_the_edges_equal_rasterios_boundless_read_without_its_vrt(tmp_path, monkeypatch, asset):
    from rasterio.io import DatasetReader

    from jointssl.data import window_read

    modality, item = s2_like(tmp_path, np.random.default_rng(11))
    href = item["assets"][asset]["href"]
    centre = chip_grid(item, modality, LON, LAT)
    west, south, east, north = centre.bounds
    span = 1280 - 160  # from the file's centre to 160 m (half a chip) from its edge, 1280 m square
    x0, y0 = ORIGIN[0] + 640 - (west + east) / 2, ORIGIN[1] - 640 - (south + north) / 2
    grids = [window_read.ChipGrid(centre.epsg, (west + dx, south + dy, east + dx, north + dy), centre.size, centre.gsd)
             for dx, dy in [(x0 + span / 2 + 100, y0), (x0 - span / 2 - 100, y0), (x0, y0 + span / 2 + 60),
                            (x0, y0 - span / 2 - 250), (x0 + span / 2 + 100, y0 + span / 2 + 100),  # a corner
                            (x0 + 5000, y0)]]  # wholly outside
    expected = [_boundless(href, [1], g, "nearest", 0) for g in grids]
    boundless = []
    real = DatasetReader.read
    monkeypatch.setattr(DatasetReader, "read", lambda self, *a, **k: boundless.append(k.get("boundless")) or
                        real(self, *a, **k))
    got = window_read.read_windows(href, [1], grids, "nearest", 0)
    assert not any(boundless)  # every edge falls on a chip pixel edge: no VRT
    for one, other in zip(expected, got):
        np.testing.assert_array_equal(one, other)
    assert (got[0] == 0).any() and (got[0] > 0).any() and (got[-1] == 0).all()
    # an edge through the middle of a chip pixel (a grid off the target GSD): rasterio's read, as before
    off = window_read.ChipGrid(centre.epsg, tuple(b + 3.0 for b in grids[0].bounds), centre.size, centre.gsd)
    with rasterio.open(href) as src:
        window = window_read._window(src.transform, off.bounds)
        assert window_read._inside(window, src.width, src.height, off.size) is None
    np.testing.assert_array_equal(window_read.read_windows(href, [1], [off], "nearest", 0)[0],
                                  _boundless(href, [1], off, "nearest", 0))


def test_an_averaged_chip_past_the_edge_is_the_inside_read_and_fill(tmp_path):
    """Averaged down (1 m -> 5 m), a chip's pixels on the raster are those of an ordinary read of the part
    inside, as for a chip wholly inside (rasterio's boundless VRT averages differently)."""
    from rasterio.enums import Resampling
    from rasterio.windows import from_bounds

    from jointssl.data import window_read

    image = np.random.default_rng(12).integers(1, 255, size=(2, 1280, 1280), dtype=np.uint8)
    href = write_cog(tmp_path / "fine.tif", image, 1.0, 0)
    file_east = ORIGIN[0] + 1280
    west = file_east - 120  # 24 of the 64 chip pixels (5 m) on the raster
    north = ORIGIN[1] - 400
    grid = window_read.ChipGrid(EPSG, (west, north - 320, west + 320, north), 64, 5.0)
    got = window_read.read_windows(href, [1, 2], [grid], "average", 0)[0]
    with rasterio.open(href) as src:
        inside = src.read([1, 2], window=from_bounds(west, north - 320, file_east, north, transform=src.transform),
                          out_shape=(2, 64, 24), resampling=Resampling.average)
    np.testing.assert_array_equal(got[:, :, :24], inside)
    assert (got[:, :, 24:] == 0).all() and (got[:, :, :24] > 0).all()


def test_a_failing_file_fails_each_window_on_its_own(tmp_path):
    from jointssl.data import window_read

    modality, item = s2_like(tmp_path, np.random.default_rng(8))
    grids = [chip_grid(item, modality, LON, LAT), chip_grid(item, modality, LON + 0.002, LAT)]
    gone = window_read.read_windows(str(tmp_path / "gone.tif"), [1], grids, "nearest", 0)
    assert len(gone) == 2 and all(isinstance(e, Exception) for e in gone)
    wrong = window_read.read_windows(item["assets"]["B04"]["href"], [1],
                               [window_read.ChipGrid(32615, g.bounds, g.size, g.gsd) for g in grids], "nearest", 0)
    assert [getattr(e, "reason", None) for e in wrong] == ["crs_mismatch", "crs_mismatch"]
