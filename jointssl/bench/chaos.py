"""A chaos run: a seeded random schedule of faults over repeated inference runs on the local machine.

``jointssl bench chaos --faults N --duration S --seed K`` (or ``scripts/chaos.sh``):

1. a classifier of the config's architecture with random weights, registered in a throw-away sqlite MLflow
   (as ``jointssl bench infer`` does), the world's catalog served by ``rustac`` on 127.0.0.1 behind a
   fault-injecting proxy (:mod:`jointssl.bench.chaos_proxy`), one local Ray;
2. a reference run without faults over ~1 km squares around the world's sites: the tiles every run must
   write exactly once;
3. :func:`fault_schedule` draws N faults at random moments of S seconds (seeded): STAC 429 / 500 / 503 /
   slow (longer than ``stac.timeout_s``) / truncated pages, and SIGKILLs of a chip loader or predictor
   actor process (by PID, a process of this run's Ray). An injector thread applies them on time while
   inference runs back to back, each into a new folder; a run that stops with an error is re-run with the
   same command (it resumes with the cells not written), as an operator would, and the error is reported;
4. the report: faults injected and met, recoveries and p50/p95 recovery time (STAC: from the failed request
   to the next answer served whole; actor kill: from the kill to the next partition committed), tiles
   duplicated and missing per run against the reference (goal 0/0), and the machine's load.

Everything listens on 127.0.0.1; Ray binds on every interface unless run in the loopback-only network
namespace (``infra/local/loopback-netns.sh``), as scripts/chaos.sh does.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jointssl.errors import JointsslError

if TYPE_CHECKING:
    from jointssl.bench.chaos_proxy import StacFaultProxy
    from jointssl.config.schema import JobConfig

STAC_FAULTS: dict[str, tuple[Any, ...]] = {
    "stac_429": ("status", 429), "stac_500": ("status", 500), "stac_503": ("status", 503),
    "stac_slow": ("slow", None), "stac_truncated": ("truncate",)}
"""STAC fault kinds and what the proxy does (slow: ``stac.timeout_s`` + 1 s)."""
ACTOR_KILLS = {"loader_kill": "TileChipLoader", "predictor_kill": "TilePredictor"}
"""Actor-kill fault kinds and the Ray Data actor class whose process is SIGKILLed."""
KINDS = (*STAC_FAULTS, *ACTOR_KILLS)
MARKERS = ("<!-- chaos:begin -->", "<!-- chaos:end -->")


@dataclass(frozen=True)
class ChaosSettings:
    seed: int = 0
    faults: int = 5
    duration_s: float = 60.0
    """Faults are drawn over this many seconds; the run ends when all were applied and a run completed."""
    sites: int | None = None
    """Sites of the world whose ~1 km squares make up the area (None: all)."""
    stac_timeout_s: float = 2.0
    max_seconds: float = 1800.0
    """Hard bound: past it the run stops, reporting faults not applied."""


@dataclass(frozen=True)
class Fault:
    number: int
    at_s: float
    kind: str


@dataclass
class Applied:
    fault: Fault
    at: float | None = None
    """When it was applied (wall clock, time.time()); None: never (no target in time)."""
    detail: str = ""
    recovery_s: float | None = None


@dataclass
class ChaosResult:
    settings: ChaosSettings
    applied: list[Applied]
    runs: list[dict[str, Any]] = field(default_factory=list)
    """Per completed run: tiles, duplicates, missing, extra, errors of the attempts that stopped before."""
    seconds: float = 0.0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def summary(self) -> dict[str, Any]:
        applied = [a for a in self.applied if a.at is not None]
        recovered = [a.recovery_s for a in applied if a.recovery_s is not None]
        return {"seed": self.settings.seed, "faults_scheduled": len(self.applied), "faults_injected": len(applied),
                "by_kind": {k: sum(a.fault.kind == k for a in applied) for k in KINDS},
                "recovered": len(recovered), "not_recovered": len(applied) - len(recovered),
                "recovery_p50_s": _quantile(recovered, 0.5), "recovery_p95_s": _quantile(recovered, 0.95),
                "runs": len(self.runs), "tiles_per_run": self.runs[0]["expected"] if self.runs else 0,
                "tiles_duplicated": sum(r["duplicates"] for r in self.runs),
                "tiles_missing": sum(r["missing"] for r in self.runs),
                "tiles_extra": sum(r["extra"] for r in self.runs),
                "re_runs_after_an_error": sum(len(r["errors"]) for r in self.runs),
                "errors_by_type": dict(Counter(e.split(":")[0] for r in self.runs for e in r["errors"])),
                "seconds": round(self.seconds, 1), "load_average": [round(v, 2) for v in self.load]}


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1], 2)


def fault_schedule(seed: int, faults: int, duration_s: float, kinds: tuple[str, ...] = KINDS) -> list[Fault]:
    """``faults`` faults at uniform random moments of ``duration_s`` seconds, kinds drawn uniformly; seeded."""
    rng = random.Random(seed)
    moments = sorted(rng.uniform(0.0, duration_s) for _ in range(faults))
    return [Fault(i, round(t, 3), rng.choice(kinds)) for i, t in enumerate(moments)]


class Injector(threading.Thread):
    """Applies the schedule on time: STAC faults through the proxy, actor kills by PID."""

    def __init__(self, schedule: list[Fault], proxy: StacFaultProxy, stac_timeout_s: float, seed: int):
        super().__init__(daemon=True)
        self.applied = [Applied(f) for f in schedule]
        self.proxy, self.slow_s = proxy, stac_timeout_s + 1.0
        self.rng = random.Random(seed + 1)
        self.stop = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        for entry in self.applied:
            while not self.stop.is_set() and time.monotonic() - start < entry.fault.at_s:
                time.sleep(0.05)
            while not self.stop.is_set() and not self._apply(entry):
                time.sleep(0.1)  # no actor of that kind right now (between runs): try again
            if self.stop.is_set():
                break
        self.done.set()

    def _apply(self, entry: Applied) -> bool:
        kind = entry.fault.kind
        if kind in STAC_FAULTS:
            fault = STAC_FAULTS[kind]
            self.proxy.inject(entry.fault.number, ("slow", self.slow_s) if fault[0] == "slow" else fault)
            entry.at, entry.detail = time.time(), "queued at the proxy"
            return True
        from jointssl.bench.infer import _kind, _tree

        targets = sorted(p for p in _tree(os.getpid()) if ACTOR_KILLS[kind] in _kind(p))
        if not targets:
            return False
        pid = self.rng.choice(targets)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        entry.at, entry.detail = time.time(), f"SIGKILL {ACTOR_KILLS[kind]} PID {pid}"
        return True


def run_chaos(config: JobConfig, settings: ChaosSettings) -> ChaosResult:
    """The chaos run of the module docstring on the world of ``config``."""
    import ray

    from jointssl import storage
    from jointssl.bench.chaos_proxy import StacFaultProxy
    from jointssl.bench.infer import _area_file, _bench_config
    from jointssl.config.schema import world_url
    from jointssl.data.sites import read_sites
    from jointssl.platform.rustac import serve_stac
    from jointssl.stac.embedded import world_catalog_files

    table = read_sites(storage.join(world_url(config), "sites.parquet"))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jointssl-chaos-") as tmp:
        config = _bench_config(config, Path(tmp), "random")
        area = _area_file(table.head(settings.sites or len(table)), Path(tmp) / "area.geojson")
        collections, items = world_catalog_files(world_url(config), Path(tmp))
        with serve_stac(collections, items) as upstream, StacFaultProxy(upstream) as proxy:
            config = dataclasses.replace(
                config, stac=dataclasses.replace(config.stac, url=proxy.url, timeout_s=settings.stac_timeout_s),
                infer=dataclasses.replace(config.infer, area=area))
            address = os.environ.pop("RAY_ADDRESS", None)  # a Ray of this process ("local": never another one
            try:  # found on the machine): its actor processes are ours to kill
                ray.init(address="local", num_cpus=config.ray.num_cpus, include_dashboard=False, log_to_driver=False)
            finally:
                if address is not None:
                    os.environ["RAY_ADDRESS"] = address
            try:
                expected = _tile_ids(_complete(config, Path(tmp) / "reference", started, settings)[0])
                injector = Injector(fault_schedule(settings.seed, settings.faults, settings.duration_s), proxy,
                                    settings.stac_timeout_s, settings.seed)
                runs = _runs_under_faults(config, Path(tmp), expected, injector, started, settings)
            finally:
                ray.shutdown()
            _recoveries(injector.applied, proxy, Path(tmp))
    return ChaosResult(settings, injector.applied, runs, time.monotonic() - started, os.getloadavg())


def _runs_under_faults(config: JobConfig, tmp: Path, expected: set[str], injector: Injector, started: float,
                       settings: ChaosSettings) -> list[dict[str, Any]]:
    """Inference runs back to back while the injector works; each checked against the reference tiles."""
    runs: list[dict[str, Any]] = []
    injector.start()
    try:
        while not (injector.done.is_set() and injector.proxy.pending() == 0 and runs):
            if time.monotonic() - started > settings.max_seconds:
                break
            run_url, errors = _complete(config, tmp / f"round-{len(runs):03d}", started, settings)
            ids = _tile_list(run_url)
            runs.append({"expected": len(expected), "tiles": len(ids), "duplicates": len(ids) - len(set(ids)),
                         "missing": len(expected - set(ids)), "extra": len(set(ids) - expected),
                         "errors": errors})
    finally:
        injector.stop.set()
        injector.join(timeout=10)
    return runs


def _complete(config: JobConfig, out: Path, started: float, settings: ChaosSettings) -> tuple[str, list[str]]:
    """Run inference into ``out`` until it completes, re-running the same command after an error (a resume):
    (the run's folder, the errors of the attempts before)."""
    from jointssl.infer.run import run_inference

    run_config = dataclasses.replace(config, infer=dataclasses.replace(config.infer, out=str(out)))
    errors: list[str] = []
    while True:
        try:
            return str(run_inference(run_config)["out"]), errors
        except Exception as err:  # any error of a run is reported; JointsslError is the expected kind
            errors.append(f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200] if str(err).strip() else ''}")
            if time.monotonic() - started > settings.max_seconds:
                raise JointsslError(f"chaos run past {settings.max_seconds:g} s; last error: {errors[-1]}") from err
            print(f"[chaos] run into {out.name} stopped ({errors[-1]}); re-running", flush=True)


def _tile_list(run_url: str) -> list[str]:
    import pyarrow.parquet as pq

    parts = sorted(Path(run_url).glob("part-*.parquet"))
    return [str(t) for p in parts for t in pq.read_table(p, columns=["tile_id"]).column("tile_id").to_pylist()]


def _tile_ids(run_url: str) -> set[str]:
    return set(_tile_list(run_url))


def _recoveries(applied: list[Applied], proxy: StacFaultProxy, tmp: Path) -> None:
    """Fill each applied fault's recovery time (see the module docstring), or leave None: not recovered."""
    commits = sorted(p.stat().st_mtime for p in tmp.glob("round-*/run-*/part-*.parquet"))
    offset = time.time() - time.monotonic()  # the proxy records monotonic times
    for entry in applied:
        if entry.at is None:
            continue
        number = entry.fault.number
        if entry.fault.kind in STAC_FAULTS:
            if number in proxy.met:
                entry.detail = f"met by a request {proxy.met[number] + offset - entry.at:.1f} s after queued"
                if number in proxy.recovered:
                    entry.recovery_s = proxy.recovered[number] - proxy.met[number]
            else:
                entry.detail, entry.at = "queued, never met by a request", None
            continue
        after = [t for t in commits if t > entry.at]
        if after:
            entry.recovery_s = after[0] - entry.at


def render(result: ChaosResult, command: str, machine: str) -> str:
    """The generated block of docs/reliability.md (markers included)."""
    s = result.summary()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    kinds = ", ".join(f"{k} {n}" for k, n in s["by_kind"].items() if n)
    not_met = [a for a in result.applied if a.at is None]
    lines = [MARKERS[0], "## Chaos run: random faults over repeated inference runs", "",
             f"Generated by `{command}` ({when}, `{machine}`, load average {' / '.join(map(str, s['load_average']))} "
             "at the end; the 2-core machine is shared with other engineers' jobs, so recovery times include "
             "waiting for CPU). See jointssl/bench/chaos.py for what is injected and how recovery is timed.", "",
             "| measure | value |", "|---|---|",
             f"| seed, faults scheduled over | {s['seed']}, {s['faults_scheduled']} over "
             f"{result.settings.duration_s:g} s |",
             f"| faults injected (by kind) | {s['faults_injected']} ({kinds}) |",
             f"| faults never applied (no request met them / no target before the end) | {len(not_met)} |",
             f"| recovered / not recovered | {s['recovered']} / {s['not_recovered']} |",
             f"| recovery time p50 / p95 | {s['recovery_p50_s']} s / {s['recovery_p95_s']} s |",
             f"| inference runs completed under faults (tiles each) | {s['runs']} ({s['tiles_per_run']}) |",
             f"| re-runs of a run that stopped with an error (resumes), by error | {s['re_runs_after_an_error']} "
             f"({', '.join(f'{k} {n}' for k, n in s['errors_by_type'].items()) or 'none'}) |",
             f"| tiles duplicated / missing / extra, all runs (goal 0 / 0 / 0) | {s['tiles_duplicated']} / "
             f"{s['tiles_missing']} / {s['tiles_extra']} |",
             f"| wall time | {s['seconds']} s |", "", MARKERS[1]]
    return "\n".join(lines)


def write_section(path: str | Path, block: str) -> None:
    """Put ``block`` between the chaos markers of ``path`` (first time: at the end), keeping the rest."""
    path = Path(path)
    text = path.read_text()
    if MARKERS[0] in text and MARKERS[1] in text:
        head, rest = text.split(MARKERS[0], 1)
        text = head + block + rest.split(MARKERS[1], 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
