"""Against what a user would pick instead (same data, same machine, same run): TorchGeo for chip
loading, and a plain PyTorch ``DataLoader`` loop for batch inference.

**Chip loading.**
The peer is what a TorchGeo user would write to get site-centred, multi-sensor chips from these COGs:
one ``RasterDataset`` per (sensor, UTM zone) over the co-located items' files (TorchGeo datasets have
one CRS each; querying every site in its own zone is the fastest TorchGeo can be, no reprojection),
the sensor's bands as separate files where they are (``separate_files``), the same target grid and
resampling as jointssl, a sampler that yields each site's chip bounds (TorchGeo's built-in samplers
draw random or gridded windows, not given points), a ``torch.utils.data.Dataset`` that returns a
site's chips of every sensor, and a ``DataLoader``. It gets its best of ``num_workers`` in (0, 2).

jointssl's side is :class:`jointssl.data.dataset.ChipBatchLoader` (what each Ray Data loader actor
runs), one batch per call. Both sides get the same process counts: ``num_workers`` 0 (in the calling
process) and 2 (two ``DataLoader`` worker processes, as Ray Data runs two loader actors on two CPUs;
jointssl's workers each load whole batches). It does more per chip than TorchGeo does (scaling, nodata
and quality masks, normalisation); TorchGeo returns raw values. Ratio = jointssl's best chips/s /
TorchGeo's best (goal > 1), and per process count. Building TorchGeo's index (it opens every file) is
timed apart and not in the ratio; jointssl's counterpart, the STAC co-location index, is not timed
either.

TorchGeo is an optional extra: ``pip install 'jointssl[bench]'``.

**Batch inference.** The area: ~1 km squares around the first ``sites`` sites of the world; the
model: the config's architecture with random weights as a registered classifier (throughput does
not depend on the weights). jointssl's side is ``jointssl infer`` itself (:func:`run_inference`: a
fresh local Ray, planner, block-reading loader and predictor actors, partitions committed as
GeoParquet), timed end to end. The peer is what a PyTorch user would write: the same tiles (planned
by the same STAC searches, in-process), a ``Dataset`` whose item is one tile's chips read chip by
chip (:func:`jointssl.data.chips.read_chip`: the same reads, masks and normalisation), a
``DataLoader`` with worker processes, the model on each batch, one GeoParquet at the end; timed end to
end as well. Ratio = jointssl tiles/s / peer tiles/s.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from jointssl.errors import JointsslError
from jointssl.sensors.spec import Modality

if TYPE_CHECKING:
    from jointssl.config.schema import JobConfig
    from jointssl.data.dataset import ChipBatchLoader

EXTRA_HINT = "install the bench extra into a separate environment: pip install 'jointssl[bench]' (torchgeo)"

SiteQuery = tuple[str, int, tuple[float, float, float, float]]
"""(sensor, EPSG, chip bounds in that CRS) of one site's chip to read."""


def require_torchgeo() -> ModuleType:
    try:
        return importlib.import_module("torchgeo")
    except ImportError:
        raise JointsslError("'jointssl bench peers' compares against TorchGeo, which is not installed",
                            hint=EXTRA_HINT) from None


def site_queries(table: pd.DataFrame, modalities: list[Modality]
                 ) -> tuple[list[list[SiteQuery | None]], dict[tuple[str, int], list[str]]]:
    """Per site and sensor the (sensor, EPSG, chip bounds) to query (None: no item), and the files of
    every (sensor, EPSG) dataset: the first asset of each co-located item (TorchGeo finds the others)."""
    from jointssl.data.chips import chip_grid, plan_reads

    queries: list[list[SiteQuery | None]] = []
    files: dict[tuple[str, int], set[str]] = {}
    for row in table.itertuples(index=False):
        per_site: list[SiteQuery | None] = []
        for m in modalities:
            text = getattr(row, f"{m.name}_item")
            if not text:
                per_site.append(None)
                continue
            item = json.loads(text)
            grid = chip_grid(item, m, float(row.lon), float(row.lat))
            files.setdefault((m.name, grid.epsg), set()).add(plan_reads(item, m)[0].href)
            per_site.append((m.name, grid.epsg, grid.bounds))
        queries.append(per_site)
    return queries, {k: sorted(v) for k, v in files.items()}


def torchgeo_dataset(modality: Modality, epsg: int, files: list[str]) -> Any:
    """A TorchGeo ``RasterDataset`` over ``files`` in EPSG:``epsg`` at the sensor's target GSD."""
    from rasterio.crs import CRS
    from rasterio.enums import Resampling
    from torchgeo.datasets import RasterDataset  # type: ignore[import-not-found,unused-ignore]  # optional extra

    assets = list(dict.fromkeys([b.asset for b in modality.bands]
                                + ([modality.quality.asset] if modality.quality else [])))
    separate = len(assets) > 1
    finer = any(b.native_gsd_m < modality.target_gsd_m * 0.75 for b in modality.bands)

    class SensorChips(RasterDataset):  # type: ignore[misc,unused-ignore]  # Any when torchgeo is not installed
        filename_glob = "*.tif"
        filename_regex = r"^(?P<band>[^.]+)\.tif$"
        separate_files = separate
        all_bands = tuple(assets) if separate else tuple(b.name for b in modality.bands)
        is_image = True

        @property
        def resampling(self) -> Resampling:  # as jointssl reads them: finer bands averaged, others nearest
            return Resampling.average if finer else Resampling.nearest

    return SensorChips(paths=files, crs=CRS.from_epsg(epsg), res=modality.target_gsd_m)


class TorchGeoSites(Dataset[dict[str, torch.Tensor]]):
    """``torch.utils.data.Dataset``: site i -> {sensor: [C H W] raw chip} via the TorchGeo datasets."""

    def __init__(self, datasets: dict[tuple[str, int], Any], queries: list[list[SiteQuery | None]],
                 modalities: list[Modality]):
        self.datasets, self.queries = datasets, queries
        self.shapes = {m.name: (len(m.bands) + (1 if m.quality else 0), m.chip_size, m.chip_size) for m in modalities}

    def __len__(self) -> int:
        return len(self.queries)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, shape in self.shapes.items():
            q = next((q for q in self.queries[i] if q is not None and q[0] == name), None)
            if q is None:
                out[name] = torch.zeros(shape)
                continue
            _, epsg, (west, south, east, north) = q
            ds = self.datasets[(name, epsg)]
            out[name] = ds[west:east:ds.res[0], south:north:ds.res[1]]["image"]  # [C H W]
        return out


def bench_torchgeo(table: pd.DataFrame, modalities: list[Modality], batch_size: int = 16, threads: int | None = None,
                   worker_counts: tuple[int, ...] = (0, 2), repeats: int = 2) -> dict[str, Any]:
    """jointssl's chip loader vs TorchGeo over the same sites' chips; best of ``repeats`` each."""
    torchgeo = require_torchgeo()
    from torch.utils.data import DataLoader

    from jointssl.data.chips import read_threads
    from jointssl.data.dataset import ChipBatchLoader

    queries, files = site_queries(table, modalities)
    chips = sum(q is not None for per_site in queries for q in per_site)
    began = time.perf_counter()
    by_name = {m.name: m for m in modalities}
    datasets = {key: torchgeo_dataset(by_name[key[0]], key[1], paths) for key, paths in files.items()}
    index_s = time.perf_counter() - began

    loader = ChipBatchLoader(modalities, threads=threads)
    batches = [table.iloc[i:i + batch_size].reset_index(drop=True) for i in range(0, len(table), batch_size)]

    def ours(workers: int) -> Callable[[], None]:
        def run() -> None:
            for _ in DataLoader(LoaderBatches(loader, batches), batch_size=None, num_workers=workers):
                pass
        return run

    def peer(workers: int) -> Callable[[], None]:
        def run() -> None:
            sites = TorchGeoSites(datasets, queries, modalities)
            for _ in DataLoader(sites, batch_size=batch_size, num_workers=workers):
                pass
        return run

    timings: dict[str, float] = {}
    with _without_aws_keys():  # local files on both sides; with keys set, rasterio builds a boto3 session
        for workers in worker_counts:  # per Env it enters, which TorchGeo's reads would pay and ours do not
            timings[f"jointssl_workers_{workers}"] = min(_timed(ours(workers)) for _ in range(repeats))
            timings[f"torchgeo_workers_{workers}"] = min(_timed(peer(workers)) for _ in range(repeats))
    best = {side: min((k for k in timings if k.startswith(side)), key=timings.__getitem__)
            for side in ("jointssl", "torchgeo")}
    return {
        "torchgeo": torchgeo.__version__,
        "sites": len(table), "chips": chips, "batch_size": batch_size,
        "jointssl_threads": read_threads([f for paths in files.values() for f in paths], threads),
        "torchgeo_datasets": len(datasets), "torchgeo_index_s": round(index_s, 2),
        "chips_per_s": {k: round(chips / v, 1) for k, v in timings.items()},
        "best_jointssl": best["jointssl"], "best_peer": best["torchgeo"],
        "ratio": round(timings[best["torchgeo"]] / timings[best["jointssl"]], 3),
        "ratio_by_workers": {str(w): round(timings[f"torchgeo_workers_{w}"] / timings[f"jointssl_workers_{w}"], 3)
                             for w in worker_counts},
        "same_pixels": same_pixels(table, modalities, datasets, queries),
    }


@contextmanager
def _without_aws_keys() -> Iterator[None]:
    """AWS credentials out of the environment for a while (DataLoader workers fork with it), then back."""
    saved = {k: os.environ.pop(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
             if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


class LoaderBatches(Dataset[dict[str, np.ndarray]]):
    """``torch.utils.data.Dataset`` of whole batches: item i -> ``loader(batches[i])`` (jointssl's side of
    the TorchGeo comparison, so that both sides run in the same DataLoader worker processes)."""

    def __init__(self, loader: ChipBatchLoader, batches: list[pd.DataFrame]):
        self.loader, self.batches = loader, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return self.loader(self.batches[i])


def same_pixels(table: pd.DataFrame, modalities: list[Modality], datasets: dict[tuple[str, int], Any],
                queries: list[list[SiteQuery | None]]) -> bool:
    """Both sides read the same windows: TorchGeo's raw first band of each sensor of the first site
    equals jointssl's window read of it."""
    from jointssl.data.chips import chip_grid, plan_reads
    from jointssl.data.window_read import read_window

    row = table.iloc[0]
    sites = TorchGeoSites(datasets, queries[:1], modalities)[0]
    for m in modalities:
        text = row[f"{m.name}_item"]
        if not text:
            continue
        item = json.loads(text)
        read = plan_reads(item, m)[0]
        ours = read_window(read.href, read.indexes[:1], chip_grid(item, m, row["lon"], row["lat"]), read.resampling, 0)
        if not np.allclose(sites[m.name][0].numpy(), ours[0].astype(np.float32), atol=0.5):
            return False
    return True


SITE_BOX_DEG = 0.005
"""Half side of the square around each site that makes up the inference area (~1 km)."""


def bench_inference(config: JobConfig, sites: int = 160, num_workers: int = 2) -> dict[str, Any]:
    """jointssl's inference vs a plain PyTorch DataLoader loop over the same area (see the module docstring)."""
    from jointssl import storage
    from jointssl.config.schema import world_url
    from jointssl.data.sites import read_sites
    from jointssl.infer.run import run_inference

    table = read_sites(storage.join(world_url(config), "sites.parquet")).head(sites)
    with tempfile.TemporaryDirectory(prefix="jointssl-bench-peers-") as folder:
        tmp = Path(folder)
        uri = f"sqlite:///{tmp}/mlflow.db"
        model = register_random_classifier(config, uri)
        config = dataclasses.replace(
            config, tracking=dataclasses.replace(config.tracking, uri=uri),
            infer=dataclasses.replace(config.infer, model=model, area=area_file(table, tmp / "area.geojson"), bbox=None,
                                      sites=None, incremental=False, out=str(tmp / "jointssl"), progress_every_s=60.0))
        began = time.perf_counter()
        summary = run_inference(config)
        ours_s = time.perf_counter() - began
        began = time.perf_counter()
        peer = plain_pytorch_inference(config, tmp / "peer.parquet", num_workers)
        peer_s = time.perf_counter() - began
    ours_rate, peer_rate = summary["tiles"] / ours_s, peer["tiles"] / peer_s
    return {"sites": len(table), "tiles": summary["tiles"], "peer_tiles": peer["tiles"],
            "jointssl_s": round(ours_s, 1), "peer_s": round(peer_s, 1), "peer_planning_s": peer["planning_s"],
            "jointssl_tiles_per_s": round(ours_rate, 2), "peer_tiles_per_s": round(peer_rate, 2),
            "peer_num_workers": num_workers, "batch_size": config.infer.batch_size,
            "model": f"{config.model.backbone}, random weights", "ratio": round(ours_rate / peer_rate, 3)}


def register_random_classifier(config: JobConfig, uri: str) -> str:
    """config.model's architecture with random weights and a linear head, registered in ``uri``;
    returns its pinned model URI."""
    import mlflow
    from torch import nn

    from jointssl.classify.model import MethaneClassifier, Standardize, fused_dim
    from jointssl.classify.registry import register_classifier
    from jointssl.data.pipeline import preset_of
    from jointssl.labels import FACILITY_CLASSES
    from jointssl.models.encoder import ModalityEncoder
    from jointssl.models.multimodal import ModalityInput, MultiModalEncoder
    from jointssl.sensors import select
    from jointssl.sensors.contract import classifier_contract
    from jointssl.tracking import local_artifact_root

    modalities = select(preset_of(config), config.infer.modalities or config.index.modalities)
    torch.manual_seed(config.run.seed)
    encoder = MultiModalEncoder(config.model, [ModalityInput.of(m) for m in modalities]).eval()
    width = cast(ModalityEncoder, next(iter(encoder.encoders.values()))).out_dim  # a ModuleDict holds nn.Modules
    dim = fused_dim(width, len(modalities), "concat")
    head = nn.Sequential(Standardize(torch.zeros(dim), torch.ones(dim)), nn.Linear(dim, len(FACILITY_CLASSES)))
    classifier = MethaneClassifier(encoder, head, "concat", classifier_contract(config.index.preset, modalities))
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("bench-peers", artifact_location=local_artifact_root(config, uri))
    run = client.create_run(experiment, run_name="random-classifier")
    version = register_classifier(classifier, "bench-peer-classifier", 0.0, uri, run.info.run_id).version
    client.set_terminated(run.info.run_id)
    return f"models:/bench-peer-classifier/{version}"


def area_file(sites: pd.DataFrame, path: Path) -> str:
    """GeoJSON of ~1 km squares around ``sites`` (one MultiPolygon)."""
    from shapely.geometry import box, mapping
    from shapely.ops import unary_union

    d = SITE_BOX_DEG
    shape = unary_union([box(x - d, y - d, x + d, y + d) for x, y in zip(sites["lon"], sites["lat"], strict=True)])
    path.write_text(json.dumps({"type": "FeatureCollection",
                                "features": [{"type": "Feature", "properties": {}, "geometry": mapping(shape)}]}))
    return str(path)


class TileChips(Dataset[dict[str, torch.Tensor]]):
    """``torch.utils.data.Dataset``: tile i -> {m: [C H W], m_present: bool}, read chip by chip."""

    def __init__(self, tiles: pd.DataFrame, modalities: list[Modality]):
        self.tiles, self.modalities = tiles.reset_index(drop=True), modalities

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        from jointssl.data.chips import Chip, read_chip

        row = self.tiles.iloc[i]
        out: dict[str, torch.Tensor] = {}
        for m in self.modalities:
            text = row[f"{m.name}_item"]
            chip = read_chip(json.loads(text), m, float(row["lon"]), float(row["lat"])) if text else None
            out[m.name] = (torch.from_numpy(chip.pixels) if isinstance(chip, Chip)
                           else torch.zeros(len(m.bands), m.chip_size, m.chip_size))  # [C H W]
            out[f"{m.name}_present"] = torch.tensor(isinstance(chip, Chip))
        return out


def plain_pytorch_inference(config: JobConfig, out: Path, num_workers: int) -> dict[str, Any]:
    """The peer: plan the tiles in-process, DataLoader over them, predict, write one GeoParquet."""
    import geopandas as gpd
    from torch.utils.data import DataLoader

    from jointssl.bench.infer import plan_in_process
    from jointssl.classify.registry import load_classifier
    from jointssl.tracking import tracking_uri

    began = time.perf_counter()
    infer, uri = config.infer, tracking_uri(config)
    ref, modalities, tiles = plan_in_process(config)
    planning_s = time.perf_counter() - began
    model = load_classifier(ref.uri, uri).eval()
    probs = [model.predict_proba(batch) for batch in
             DataLoader(TileChips(tiles, modalities), batch_size=infer.batch_size, num_workers=num_workers)]
    scores = np.concatenate(probs)  # [N K]
    frame = tiles[["tile_id", "lon", "lat"]].copy()
    for k, name in enumerate(model.classes):
        frame[f"prob_{name}"] = scores[:, k]
    gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs=4326).to_parquet(out)
    return {"tiles": len(tiles), "planning_s": round(planning_s, 1)}


def _timed(fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started
