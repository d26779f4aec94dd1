"""The whole-country table: measured per-stage costs (:func:`jointssl.bench.country.measure_stages`)
projected to an area, for a full pass and a nightly incremental pass (assumptions in
:mod:`jointssl.bench.country`; every one of them is returned with the table and printed under it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Assumptions:
    area_km2: float
    side_m: float
    stride_m: float
    gpu_tflops: float
    nodes: tuple[int, ...]
    gpus_per_node: int
    cores_per_node: int
    nic_gbps: float
    revisit_days: dict[str, float] = field(default_factory=dict)
    """Sensor -> nights between new scenes of a tile (absent: never new on a night)."""


def project(stages: Mapping[str, Any], a: Assumptions) -> dict[str, Any]:
    """Tiles, bytes, CPU-hours per stage, GPU-hours and wall time per node count, full and nightly."""
    tiles = a.area_km2 * 1e6 / a.stride_m ** 2
    sensors: dict[str, Any] = stages["sensors"]
    cache: dict[str, Any] = stages.get("sensors_cache", {})
    new = {m: 1.0 / a.revisit_days[m] if m in a.revisit_days else 0.0 for m in sensors}  # share of tiles per night
    none_new = 1.0
    for share in new.values():
        none_new *= 1.0 - share
    triggered = 1.0 - none_new

    def per_tile(share: Mapping[str, float], trig: float, use_cache: bool) -> dict[str, Any]:
        """Per tile of the area: CPU ms per stage, GPU FLOPs, bytes read (``share``: tiles whose sensor is read)."""
        cpu = {"planning": trig * stages["planning_ms"], "head": trig * stages["head_ms"],
               "write": trig * stages["write_ms"]}
        flops = bytes_read = 0.0
        for m, s in sensors.items():
            cpu[f"read {m}"] = share[m] * s["read_ms"]
            cpu[f"encode {m} (CPU)"] = share[m] * s["encode_ms"]
            flops += share[m] * s["present"] * s["flops_per_chip"]
            bytes_read += share[m] * s["bytes_per_tile"]
            if use_cache and m in cache:
                cpu[f"cache {m}"] = share[m] * cache[m]["commit_ms"] + (trig - share[m]) * cache[m]["read_ms"]
                bytes_read += trig * cache[m]["bytes_per_tile"]  # the cell files a pass reads
        return {"cpu_ms": cpu, "flops": flops, "bytes": bytes_read}

    passes = {
        "full pass": per_tile({m: 1.0 for m in sensors}, 1.0, False),
        "nightly, embedding cache": per_tile(new, triggered, True),
        "nightly, no cache": per_tile({m: triggered for m in sensors}, triggered, False),
    }
    out: dict[str, Any] = {"assumptions": asdict(a), "tiles": tiles, "triggered_per_night": triggered,
                           "new_scene_share_per_night": new, "passes": {}}
    for name, p in passes.items():
        cpu_h = {k: tiles * v / 3.6e6 for k, v in p["cpu_ms"].items()}
        gpu_h = tiles * p["flops"] / (a.gpu_tflops * 1e12) / 3600
        data_cpu_h = sum(v for k, v in cpu_h.items() if "(CPU)" not in k)  # what the CPUs do beside GPUs
        walls = {}
        for n in a.nodes:
            cpu_wall = data_cpu_h / (n * a.cores_per_node)
            gpu_wall = gpu_h / (n * a.gpus_per_node)
            net_wall = tiles * p["bytes"] * 8 / (n * a.nic_gbps * 1e9) / 3600
            bound = max(("CPU", cpu_wall), ("GPU", gpu_wall), ("network", net_wall), key=lambda kv: kv[1])
            walls[n] = {"hours": bound[1], "bound_by": bound[0], "cpu_h": cpu_wall, "gpu_h": gpu_wall,
                        "network_h": net_wall}
        out["passes"][name] = {"cpu_hours": cpu_h, "cpu_hours_beside_gpus": data_cpu_h,
                               "cpu_hours_all_on_cpu": sum(cpu_h.values()), "gpu_hours": gpu_h,
                               "bytes_read": tiles * p["bytes"], "wall": walls}
    return out


def render(result: Mapping[str, Any], stages: Mapping[str, Any]) -> str:
    """Markdown: the per-stage table, the wall-time table and the assumptions."""
    a = result["assumptions"]
    names = list(result["passes"])
    stage_names = list(result["passes"][names[0]]["cpu_hours"])
    for n in names[1:]:
        stage_names += [s for s in result["passes"][n]["cpu_hours"] if s not in stage_names]
    lines = [f"Contiguous US, {a['area_km2'] / 1e6:.1f} million km^2: **{result['tiles'] / 1e6:.1f} million tiles** "
             f"({a['side_m']:.0f} m tiles every {a['stride_m']:.0f} m); a night has new imagery on "
             f"{100 * result['triggered_per_night']:.0f} % of them.", "",
             "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for s in stage_names:
        lines.append(f"| CPU-hours: {s} | " + " | ".join(_num(result["passes"][n]["cpu_hours"].get(s, 0.0))
                                                            for n in names) + " |")
    rows = [("CPU-hours beside the GPUs (all but encode)", "cpu_hours_beside_gpus", _num),
            ("CPU-hours, everything on CPUs", "cpu_hours_all_on_cpu", _num),
            (f"GPU-hours at {a['gpu_tflops']:g} TFLOP/s", "gpu_hours", _num),
            ("bytes read", "bytes_read", _bytes)]
    for label, key, fmt in rows:
        lines.append(f"| {label} | " + " | ".join(fmt(result["passes"][n][key]) for n in names) + " |")
    for nodes in a["nodes"]:
        walls = [result["passes"][n]["wall"][nodes] for n in names]
        cells = [f"{_hours(w['hours'])} ({w['bound_by']})" for w in walls]
        lines.append(f"| wall time, {nodes} node{'s' if nodes > 1 else ''} ({nodes * a['gpus_per_node']} GPUs, "
                     f"{nodes * a['cores_per_node']} cores) | " + " | ".join(cells) + " |")
    lines += ["", "Assumptions: " + "; ".join(_assumptions(a, stages))]
    return "\n".join(lines)


def _assumptions(a: Mapping[str, Any], stages: Mapping[str, Any]) -> list[str]:
    revisit = ", ".join(f"{m} every {d:g} days" for m, d in a["revisit_days"].items())
    return [
        f"per-stage costs measured on {stages['tiles']} tiles of the world ({stages['model']}, one torch thread, "
        "the machine named with the numbers), the same per tile at any scale",
        "tiles everywhere (a real catalog has no imagery over some water and borders: fewer tiles)",
        f"GPU forward at {a['gpu_tflops']:g} TFLOP/s sustained per GPU (assumed: no GPU measured) on the "
        "measured FLOPs per chip; encode on CPUs beside the GPUs is not needed",
        f"{a['cores_per_node']} cores per node all busy on planning, reads, head, write and cache; stages streamed, "
        "so a pass takes as long as its slowest resource (CPU, GPU or network); start-up, STAC API rate limits "
        "and object-store request limits not included",
        f"{a['nic_gbps']:g} Gb/s per node to object storage; bytes = what the reads pulled on the world's COGs",
        f"new scenes: {revisit}; NAIP never new on a night; a tile with a new scene pays planning, head, write "
        "and the cache reads of its unchanged sensors; each new scene its read, encode and cache write",
    ]


def _num(v: float) -> str:
    return f"{v:,.0f}" if v >= 10 else f"{v:,.2f}"


def _bytes(v: float) -> str:
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9)):
        if v >= size:
            return f"{v / size:,.1f} {unit}"
    return f"{v / 1e6:,.1f} MB"


def _hours(h: float) -> str:
    return f"{h:,.1f} h" if h >= 1 else f"{60 * h:,.0f} min"


def stage_rows(stages: Mapping[str, Any]) -> Sequence[str]:
    """Markdown table of the measured per-stage costs."""
    lines = ["| stage | CPU ms per tile | bytes per tile |", "|---|---|---|",
             f"| planning | {stages['planning_ms']:.2f} | |"]
    for m, s in stages["sensors"].items():
        lines.append(f"| read {m} (present on {100 * s['present']:.0f} % of tiles) | {s['read_ms']:.2f} | "
                     f"{s['bytes_per_tile']:,.0f} |")
        lines.append(f"| encode {m} ({s['flops_per_chip'] / 1e6:,.0f} MFLOP per chip) | {s['encode_ms']:.2f} | |")
    for m, c in stages.get("sensors_cache", {}).items():
        lines.append(f"| embedding cache {m}: commit / read | {c['commit_ms']:.3f} / {c['read_ms']:.3f} | "
                     f"{c['bytes_per_tile']:,.0f} |")
    lines.append(f"| head (fusion, head, calibration) | {stages['head_ms']:.2f} | |")
    lines.append(f"| write (GeoParquet partition) | {stages['write_ms']:.2f} | {stages['write_bytes_per_tile']:,.0f} |")
    return lines
