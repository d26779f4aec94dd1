"""Inference efficiency and memory: is the model kept busy, and does memory stay flat as the area grows?

Runs of the real inference (:func:`jointssl.infer.run.run_inference`, Ray Data actor pools, embedded or
configured STAC API, GeoParquet written) over a *small* area and an area ``scale`` times larger with the
same density of imagery: the union of ~1 km squares around the first ``n / scale`` sites of the world,
then around ``n`` sites (and around ``n / 2`` in between: memory that is flat from half to whole is
bounded, whatever warm-up the small run did not reach). The runs share one local Ray, warmed up by a
first pass over the small area (its cold start is reported apart), as a long-lived cluster would be. A
sampler thread records each run's peak memory: the driver's RSS and the PSS summed over the driver's
whole process tree (Ray's daemons, the planner, loader and predictor workers, the object store pages
they map).

Efficiency = end-to-end tiles/s of the larger area (planning, chip reads, prediction and partition writes,
actor start-up on the warm cluster included) / the model's forward throughput on in-memory chip batches
of the same tiles (same batch size, torch threads and device as a predictor actor, times the number of
predictor actors). The end to end is measured in a run of its own, after the memory runs, that samples
CPU time only (reading every process's PSS costs ~80 ms of CPU a sample on a 2-CPU run, CPU the
measured pipeline would not have had otherwise); the forward is timed right before and right after
it, and the faster of the two is used (a shared machine's speed drifts within minutes: the same
forward measured 16.7 and 21.0 ms of CPU per tile in two runs half an hour apart).
1.0 means the data plane keeps the model busy all the time. The same ratio without the time before the
first predictions arrive (worker processes starting, the model loading) is printed beside it: start-up
is a constant that a region-sized run amortises and a benchmark-sized one does not.

The model: ``random`` (default) is the architecture of the config's ``model`` section with random
weights and a linear head (what ``jointssl evaluate`` registers; throughput does not depend on the
weights), registered in a throw-away sqlite MLflow; ``registry`` uses ``infer.model`` from the config's
tracking server.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from jointssl import storage
from jointssl.config.schema import JobConfig, world_url
from jointssl.errors import JointsslError

if TYPE_CHECKING:
    import pandas as pd

    from jointssl.infer.model_ref import ModelRef
    from jointssl.sensors.spec import Modality

SITE_BOX_DEG = 0.005
"""Half side of the square around each site that makes up the benchmark's areas (~1 km squares)."""


EXITED = "exited, after the last sample"
"""The CPU kind of what processes did between their last sample and their exit (see PeakMemory)."""

SAMPLE_EVERY_S = 1.0
"""Seconds between memory samples. A sample reads /proc/<pid>/smaps_rollup of every process of the tree,
which walks their page tables: ~80 ms of CPU per sample for the ~15 processes of a 2-CPU run (~17 ms per
GiB mapped), so sampling every 0.25 s took ~15 % of the machine from the pipeline it measures (and was
counted as the driver's CPU). Runs last tens of seconds or more and memory plateaus, so 1 s keeps the
peaks; the sampler's own CPU is reported apart (``sampler``) and not counted as the driver's."""


class PeakMemory(threading.Thread):
    """Samples, every ``every_s``, the driver's RSS and the PSS of every process of its tree (MiB), and
    the CPU time of each (``pss`` False: the CPU times and the driver's RSS only, at a small cost).

    ``tree_mib`` is the peak of the tree's total PSS (shared pages counted once); ``kinds`` keeps, per
    process kind (the driver, each Ray actor class, each Ray daemon), the peak of its PSS and of the
    anonymous and shared-memory (object store) parts of it. The sum of the per-kind peaks,
    ``footprint_mib``, does not depend on which processes happened to be alive at the same instant.

    CPU: a process that started after the sampler counts from zero (not from its first sample: an actor
    imports torch in its first second), and what processes did after their last sample before they exited
    (or all of it, for one that lived between two samples) is read off their parents' reaped-children
    times and reported as ``exited, after the last sample``.
    """

    def __init__(self, every_s: float = SAMPLE_EVERY_S, pss: bool = True):
        super().__init__(daemon=True)
        self.every_s = every_s
        self.pss = pss
        self.sampler_cpu_s = 0.0
        """CPU seconds this thread spent sampling (part of the driver process's CPU time)."""
        self.driver_mib = 0.0
        self.tree_mib = 0.0
        self.kinds: dict[str, dict[str, float]] = {}
        self._cpu: dict[int, tuple[str, float, float]] = {}
        """pid -> (kind, CPU seconds at the start (0: started since), CPU seconds when last seen)."""
        self._reaped: dict[int, tuple[float, float]] = {}
        """pid -> its reaped children's CPU seconds at the start (0: started since) and when last seen."""
        self._alive: set[int] = set()
        """The pids of the latest sample."""
        self._start_ticks = _uptime_ticks()
        self._sampler_at_driver: tuple[float, float] | None = None
        """The sampler's own CPU seconds when the driver's CPU time was first and last read."""
        self._done = threading.Event()

    @property
    def cpu_s(self) -> dict[str, float]:
        """CPU seconds each process kind spent during the run (user + system)."""
        out: dict[str, float] = {}
        for kind, first, last in self._cpu.values():
            out[kind] = out.get(kind, 0.0) + last - first
        reaped = sum(last - first for pid, (first, last) in self._reaped.items() if pid in self._alive)
        seen_dead = sum(self._cpu[pid][2] + self._reaped[pid][0] for pid in self._reaped if pid not in self._alive)
        if reaped - seen_dead > 0.05:
            out[EXITED] = reaped - seen_dead
        if "driver" in out and self._sampler_at_driver:  # the sampler is a thread of the driver process:
            first, last = self._sampler_at_driver  # its CPU between the driver's two readings is the benchmark's
            out["driver"] = max(0.0, out["driver"] - (last - first))
        out["sampler"] = self.sampler_cpu_s
        return out

    @property
    def footprint_mib(self) -> float:
        return sum(k["pss"] for k in self.kinds.values())

    def run(self) -> None:
        while True:
            self._sample()
            if self._done.wait(self.every_s):
                self._sample()  # a last one: what exited since the previous one is in its parent's times now
                return

    def _sample(self) -> None:
        started = time.thread_time()
        self.driver_mib = max(self.driver_mib, _status_kib(os.getpid(), "VmRSS") / 1024)
        sample: dict[str, dict[str, float]] = {}
        tree = _tree(os.getpid())
        for pid in tree:
            kind = "driver" if pid == os.getpid() else _kind(pid)
            cpu, children, started_at = _cpu_times(pid)
            if pid not in self._cpu and started_at >= self._start_ticks:  # started since: all of it counts
                self._cpu[pid] = (kind, 0.0, 0.0)
                self._reaped[pid] = (0.0, 0.0)
            first_children, last_children = self._reaped.get(pid, (children, children))
            self._reaped[pid] = (first_children, max(children, last_children))
            if pid == os.getpid():
                sampler = self.sampler_cpu_s + time.thread_time() - started
                self._sampler_at_driver = (self._sampler_at_driver or (sampler, sampler))[0], sampler
            seen = self._cpu.get(pid)
            named = seen[0] if seen and kind in ("?", "") else kind  # an exiting process has no cmdline left
            self._cpu[pid] = (named, seen[1] if seen else cpu, max(cpu, seen[2] if seen else cpu))
            if self.pss:
                into = sample.setdefault(kind, {"pss": 0.0, "anon": 0.0, "shmem": 0.0})
                for key, value in _rollup_mib(pid).items():
                    into[key] += value
        self._alive = set(tree)
        self.tree_mib = max(self.tree_mib, sum(k["pss"] for k in sample.values()))
        for kind, values in sample.items():
            peak = self.kinds.setdefault(kind, {"pss": 0.0, "anon": 0.0, "shmem": 0.0})
            for key, value in values.items():
                peak[key] = max(peak[key], value)
        self.sampler_cpu_s += time.thread_time() - started

    def stop(self) -> PeakMemory:
        self._done.set()
        self.join()
        return self


def bench_infer(config: JobConfig, sites: int | None = None, scale: int = 10, model: str = "random") -> dict[str, Any]:
    """Run the benchmark on the world of ``config`` (see the module docstring); returns the results."""
    import torch

    from jointssl.data.sites import read_sites

    table = read_sites(storage.join(world_url(config), "sites.parquet"))
    n = min(sites or len(table), len(table))
    if n // scale < 2:
        raise JointsslError(f"the world has {len(table)} sites: too few for a small area of n/{scale} sites",
                            hint="use a bigger world (jointssl world --profile demo) or a smaller --scale")
    with tempfile.TemporaryDirectory(prefix="jointssl-bench-infer-") as tmp:
        config = _bench_config(config, Path(tmp), model)
        areas = {"small": _area_file(table.head(n // scale), Path(tmp) / "small.geojson"),
                 "half": _area_file(table.head(n // 2), Path(tmp) / "half.geojson"),
                 "large": _area_file(table.head(n), Path(tmp) / "large.geojson")}
        import ray

        # a Ray of its own: without address, ray.init joins the last cluster any user started on this machine
        ray.init(address="local", num_cpus=config.ray.num_cpus, include_dashboard=False, log_to_driver=False)
        try:  # one cluster, warmed up by a first pass over the small area (worker processes, imports)
            cold = _run(config, areas["small"], Path(tmp) / "out-warm-up")
            runs = {name: _run(config, path, Path(tmp) / f"out-{name}") for name, path in areas.items()}
            timer = ForwardThroughput(config, areas["small"])  # after the memory runs: not in their driver
            before = timer()  # the forward is timed right before and right after the throughput run:
            timed = _run(config, areas["large"], Path(tmp) / "out-throughput", memory=False)
            after = timer()  # this machine's speed drifts by a quarter within minutes
            forward = max(before, after, key=lambda f: f["tiles_per_s"])  # the faster: the lower efficiency
        finally:
            ray.shutdown()
    large, small, half = runs["large"], runs["small"], runs["half"]
    cpu_ms = {k: round(1000 * v / timed["tiles"], 2) for k, v in sorted(timed["cpu_s"].items(), key=lambda kv: -kv[1])
              if v > 0.05}
    total_ms = sum(v for k, v in cpu_ms.items() if k != "sampler")  # the pipeline's, not the benchmark's
    cores = float(config.ray.num_cpus or os.cpu_count() or 1)
    predictor_ms = sum(v for k, v in cpu_ms.items() if "TilePredictor" in k)
    e2e = timed["tiles"] / timed["seconds"]
    capacity = forward["tiles_per_s"] * forward["predictors"]
    return {
        "world": world_url(config),
        "sites": {"small": n // scale, "half": n // 2, "large": n},
        "tiles": {k: r["tiles"] for k, r in runs.items()},
        "end_to_end_tiles_per_s": round(e2e, 2),
        "end_to_end_tiles_per_s_memory_runs": {k: round(r["tiles"] / r["seconds"], 2) for k, r in runs.items()},
        "forward_tiles_per_s": round(forward["tiles_per_s"], 2),
        "forward": forward,
        "forward_tiles_per_s_before_after": [round(before["tiles_per_s"], 2), round(after["tiles_per_s"], 2)],
        "inference_efficiency": round(e2e / capacity, 3),
        "cpu_ms_per_tile": {"total": round(total_ms, 1), **cpu_ms},
        "model_share_of_pipeline_cpu": round(forward["cpu_ms_per_tile"] / total_ms, 3) if total_ms else None,
        "idle_machine_estimate": _idle_estimate(cores, total_ms, predictor_ms, forward),
        "inference_efficiency_after_start_up": (
            round(timed["tiles"] / (timed["seconds"] - timed["first_output_s"]) / capacity, 3)
            if timed["first_output_s"] else None),
        "peak_driver_rss_mib": {"small": round(small["driver_mib"]), "large": round(large["driver_mib"])},
        "peak_process_tree_pss_mib": {k: round(r["tree_mib"]) for k, r in runs.items()},
        "peak_footprint_mib": {k: round(r["footprint_mib"]) for k, r in runs.items()},
        "memory_growth": {
            "driver_rss": round(large["driver_mib"] / small["driver_mib"] - 1.0, 3),
            "process_tree_pss": round(large["tree_mib"] / small["tree_mib"] - 1.0, 3),
            "footprint": round(large["footprint_mib"] / small["footprint_mib"] - 1.0, 3),
            "process_tree_pss_half_to_large": round(large["tree_mib"] / half["tree_mib"] - 1.0, 3),
        },
        "peak_by_process_mib": {"small": small["by_kind"], "large": large["by_kind"]},
        "seconds": {"throughput": round(timed["seconds"], 1), **{k: round(r["seconds"], 1) for k, r in runs.items()}},
        "cold_start_run": {"tiles": cold["tiles"], "seconds": round(cold["seconds"], 1),
                           "first_output_s": cold["first_output_s"]},
        "first_output_s": {"throughput": timed["first_output_s"], **{k: r["first_output_s"] for k, r in runs.items()}},
        "actors": timed["actors"],
        "object_store_mib": timed["object_store_mib"],
        "model": config.model.backbone if model == "random" else config.infer.model,
        "torch": torch.__version__,
        "machine": f"{platform.node()} ({os.cpu_count()} CPUs)",
    }


def _idle_estimate(cores: float, total_ms: float, predictor_ms: float, forward: dict[str, Any]) -> dict[str, Any]:
    """What the CPU accounting says the run would reach on this machine with nothing else running: the
    pipeline is bound by all of its CPU per tile over the cores, or by the predictors' own CPU per tile;
    the model alone by its forward CPU per tile. CPU seconds do not depend on neighbours' load."""
    if not total_ms or not predictor_ms or forward["device"] != "cpu":
        return {}
    pipeline = min(cores * 1000 / total_ms, forward["predictors"] * 1000 / predictor_ms)
    model = forward["predictors"] * 1000 / forward["cpu_ms_per_tile"]
    return {"tiles_per_s": round(pipeline, 1), "forward_tiles_per_s": round(model, 1),
            "inference_efficiency": round(pipeline / model, 3)}


def _bench_config(config: JobConfig, tmp: Path, model: str) -> JobConfig:
    tracking = config.tracking
    infer = config.infer
    if model == "random":
        uri = f"sqlite:///{tmp}/mlflow.db"
        version = _register_random(config, uri)
        tracking = dataclasses.replace(tracking, uri=uri)
        infer = dataclasses.replace(infer, model=f"models:/bench-classifier/{version}")
    return dataclasses.replace(config, tracking=tracking, infer=dataclasses.replace(
        infer, area=None, bbox=None, sites=None, incremental=False, progress_every_s=30.0))


def _register_random(config: JobConfig, uri: str) -> str:
    """A classifier of config.model's architecture, random weights, registered in sqlite at ``uri``."""
    import mlflow
    import torch
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
    experiment = client.create_experiment("bench", artifact_location=local_artifact_root(config, uri))
    run = client.create_run(experiment, run_name="bench-classifier")
    registration = register_classifier(classifier, "bench-classifier", 0.0, uri, run.info.run_id)
    client.set_terminated(run.info.run_id)
    return registration.version


def _area_file(sites: pd.DataFrame, path: Path) -> str:
    """GeoJSON of ~1 km squares around ``sites`` (one MultiPolygon)."""
    from shapely.geometry import box, mapping
    from shapely.ops import unary_union

    d = SITE_BOX_DEG
    shape = unary_union([box(x - d, y - d, x + d, y + d) for x, y in zip(sites["lon"], sites["lat"], strict=True)])
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": mapping(shape)}]}))
    return str(path)


def measured_inference(config: JobConfig, memory: bool) -> tuple[dict[str, Any], float, PeakMemory]:
    """One inference run of ``config`` with the process tree sampled (peak memory too with ``memory``, else
    CPU only): (its summary, wall seconds, the sampler)."""
    from jointssl.infer.run import run_inference

    sampler = PeakMemory(pss=memory)
    sampler.start()
    try:
        started = time.perf_counter()
        summary = run_inference(config)
        seconds = time.perf_counter() - started
    finally:
        sampler.stop()
    return summary, seconds, sampler


def _run(config: JobConfig, area: str, out: Path, memory: bool = True) -> dict[str, Any]:
    """One inference run over ``area`` on the benchmark's Ray, with peak memory sampled (else CPU only)."""
    run_config = dataclasses.replace(config, infer=dataclasses.replace(config.infer, area=area, out=str(out)))
    summary, seconds, sampler = measured_inference(run_config, memory)
    return {"tiles": summary["tiles"], "seconds": seconds, "driver_mib": sampler.driver_mib,
            "tree_mib": sampler.tree_mib, "footprint_mib": sampler.footprint_mib,
            "by_kind": {k: {key: round(v) for key, v in values.items()}
                        for k, values in sorted(sampler.kinds.items(), key=lambda kv: -kv[1]["pss"])[:8]},
            "actors": summary.get("compute", {}).get("actors"),
            "object_store_mib": summary.get("compute", {}).get("object_store_mib"),
            "cpu_s": sampler.cpu_s,
            "first_output_s": summary.get("compute", {}).get("first_output_s")}


def plan_in_process(config: JobConfig, max_tiles: int | None = None
                    ) -> tuple[ModelRef, list[Modality], pd.DataFrame]:
    """(model reference, its modalities, the planned tiles) of ``config.infer``'s area, planned in this
    process against the configured or embedded STAC API, cell by cell until ``max_tiles`` (None: all):
    the in-memory baselines' tiles, exactly as the stream's planners plan them."""
    import pandas as pd

    from jointssl.infer.area import load_area
    from jointssl.infer.model_ref import model_modalities, resolve_model
    from jointssl.infer.plan import MARKER_ID, PlanSettings, plan_group
    from jointssl.infer.tiles import TileGrid, cells_of
    from jointssl.stac.client import open_client
    from jointssl.stac.embedded import stac_api
    from jointssl.tracking import tracking_uri

    infer = config.infer
    ref = resolve_model(infer.model, tracking_uri(config))
    modalities = model_modalities(config, ref)
    grid = TileGrid.of(modalities, infer.overlap, infer.partition_deg)
    geometry = load_area(infer).geometry
    settings = PlanSettings(modalities, grid, (infer.start, infer.end), None, config.index.min_coverage,
                            config.index.page_size, infer.block_tiles)
    frames = []
    with stac_api(config.stac.resolved_url(), world_url(config)) as url:
        client, _ = open_client(url, config.stac.timeout_s, config.stac.max_retries)
        for cell in cells_of(geometry, grid.cell_deg):
            frames += [f[f["tile_id"] != MARKER_ID] for f in plan_group(client, settings, [cell], geometry, None)]
            if max_tiles is not None and sum(len(f) for f in frames) >= max_tiles:
                break
    tiles = pd.concat(frames, ignore_index=True)
    return ref, modalities, tiles if max_tiles is None else tiles.head(max_tiles)


class ForwardThroughput:
    """predict_proba tiles/s on real chip batches held in memory, as one predictor actor runs it: the
    chips and the model are prepared once, each call times two passes and keeps the faster (a busy
    neighbour on the machine is not the model)."""

    def __init__(self, config: JobConfig, area: str, max_tiles: int = 512):
        import torch

        from jointssl.classify.registry import load_classifier
        from jointssl.infer.resources import actor_plan
        from jointssl.infer.tile_chips import TileChipLoader
        from jointssl.tracking import tracking_uri

        infer = dataclasses.replace(config.infer, area=area)
        ref, modalities, tiles = plan_in_process(dataclasses.replace(config, infer=infer), max_tiles)
        chips = TileChipLoader(modalities)(tiles)
        cpus = (os.cpu_count() or 1) if config.ray.num_cpus is None else config.ray.num_cpus
        self.actors = actor_plan(config, float(cpus), float(torch.cuda.device_count()))
        self.batch_size = infer.batch_size
        self.tiles = len(tiles)
        self.model = load_classifier(ref.uri, tracking_uri(config)).to(self.actors.device)
        self.batches = []
        for start in range(0, len(tiles), infer.batch_size):
            rows = slice(start, start + infer.batch_size)
            batch = {}
            for m in modalities:
                present = chips[f"{m.name}_present"][rows]
                batch[m.name] = torch.from_numpy(chips[m.name][rows]).to(self.actors.device)  # [B C H W]
                batch[f"{m.name}_present"] = torch.from_numpy(present).to(self.actors.device)  # [B]
            self.batches.append(batch)

    def __call__(self) -> dict[str, Any]:
        import torch

        threads = torch.get_num_threads()
        if self.actors.torch_threads:
            torch.set_num_threads(self.actors.torch_threads)
        try:
            self.model.predict_proba(self.batches[0])  # warm-up (allocator, kernels)
            best, cpu = 0.0, float("inf")
            for _ in range(2):
                started, cpu_started = time.perf_counter(), time.process_time()
                for batch in self.batches:
                    self.model.predict_proba(batch, chunk=self.batch_size)
                if self.actors.device == "cuda":
                    torch.cuda.synchronize()
                best = max(best, self.tiles / (time.perf_counter() - started))
                cpu = min(cpu, (time.process_time() - cpu_started) / self.tiles)
        finally:
            torch.set_num_threads(threads)
        return {"tiles_per_s": best, "cpu_ms_per_tile": round(1000 * cpu, 2), "tiles": self.tiles,
                "batch_size": self.batch_size, "device": self.actors.device,
                "torch_threads": self.actors.torch_threads, "predictors": self.actors.predictors}


def _tree(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as handle:
                    stat = handle.read()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def _kind(pid: int) -> str:
    """'ray::MapWorker(MapBatches(TilePredictor))', 'raylet', 'gcs_server', ... from the command line."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return "?"
    first = argv[0].decode(errors="replace")
    if not first:
        return "?"
    if first.startswith("ray::"):  # 'ray::MapWorker(MapBatches(TilePredictor)).submit' -> the actor class
        title = first.split(" ")[0]
        if ")" in title:
            return title[:title.rindex(")") + 1]
        return title.split(".")[0]  # 'ray::_StatsActor.update_execution_metrics' -> 'ray::_StatsActor'
    name = os.path.basename(first)
    if name.startswith("python") and len(argv) > 1:
        return os.path.basename(argv[1].decode(errors="replace")) or name
    return name


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    return _cpu_times(pid)[0]


def _cpu_times(pid: int) -> tuple[float, float, int]:
    """(user + system CPU seconds of ``pid``, those of its children it reaped, its start in clock ticks
    after boot); zeros when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0, 0
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick, int(fields[19])


def _uptime_ticks() -> int:
    """Clock ticks since boot (what /proc/<pid>/stat's start time counts)."""
    with open("/proc/uptime") as handle:
        return int(float(handle.read().split()[0]) * os.sysconf("SC_CLK_TCK"))


def _status_kib(pid: int, key: str) -> float:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def _rollup_mib(pid: int) -> dict[str, float]:
    """PSS of ``pid`` and its anonymous and shared-memory parts (/proc/<pid>/smaps_rollup), MiB."""
    keys = {"Pss:": "pss", "Pss_Anon:": "anon", "Pss_Shmem:": "shmem"}
    out = {"pss": 0.0, "anon": 0.0, "shmem": 0.0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                key = line.split(" ", 1)[0]
                if key in keys:
                    out[keys[key]] = float(line.split()[1]) / 1024
    except OSError:
        pass
    return out
