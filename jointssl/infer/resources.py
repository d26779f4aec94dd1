"""How many actors each stage of the inference stream gets, and what each reserves.

Three actor pools: planners (STAC searches, light), chip loaders (latency-bound reads in threads) and
predictors (the model). Reservations are scheduling claims, not limits, and are kept fractional: on a
2-CPU machine the three pools must fit in one CPU so that one whole CPU stays free for Ray Data's own
tasks, or the stream stalls (measured on 2 cores, see the shared platform notes and
:func:`jointssl.train.trainer.loader_count`). Predictors take a GPU each when the cluster has GPUs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from jointssl.config.schema import JobConfig
from jointssl.errors import JointsslError
from jointssl.sensors.spec import Modality

PLANNER_CPUS = 0.25
"""A planner mostly waits on the STAC API."""
LOADER_CPUS = 0.25
"""A loader mostly waits on range reads (it runs them in threads)."""
GPU_PREDICTOR_CPUS = 1.0
"""A GPU predictor's host-side work (tensor copies, the output rows)."""
BATCHES_PER_PREDICTOR = 16
"""Predictor batches of chips the stream's object store budget holds per predictor actor."""
MIN_STREAM_MIB = 256
"""The least object store budget of a stream. Planned tiles carry their STAC items (~12 KB per tile
on the world) and queue in the same budget as the chips: with 128 MiB (in a run of the 3,200-site
benchmark with a profiler attached) the chip loaders were held back by it and the predictor's queue
was empty on nearly every progress line; the cost is memory, the budget's worth, not the area's."""


@dataclass(frozen=True)
class ActorPlan:
    planners: int
    loaders: int
    predictors: int
    predictor_cpus: float
    predictor_gpus: float
    device: str
    """'cuda' or 'cpu'."""
    torch_threads: int | None
    """Intra-op threads of a CPU predictor (None on GPUs)."""

    @property
    def reserved_cpus(self) -> float:
        return self.planners * PLANNER_CPUS + self.loaders * LOADER_CPUS + self.predictors * self.predictor_cpus

    def describe(self) -> str:
        where = (f"{self.predictor_gpus:g} GPU" if self.device == "cuda"
                 else f"{self.predictor_cpus:g} CPU, {self.torch_threads} torch thread(s)")
        return (f"{self.planners} planner(s), {self.loaders} chip loader(s), {self.predictors} predictor(s) "
                f"({where} each)")


def stream_budget_mib(config: JobConfig, modalities: Sequence[Modality], predictors: int) -> int:
    """The object store budget of the stream: ``infer.object_store_mib``, else BATCHES_PER_PREDICTOR
    batches of float32 chips (every modality's) per predictor actor, at least MIN_STREAM_MIB."""
    if config.infer.object_store_mib is not None:
        return config.infer.object_store_mib
    batches = BATCHES_PER_PREDICTOR * predictors * config.infer.batch_size * tile_chip_bytes(modalities)
    return max(MIN_STREAM_MIB, math.ceil(batches / 1024**2))


def stream_block_bytes(config: JobConfig, modalities: Sequence[Modality]) -> int:
    """The stream's ``target_max_block_size``: the float32 chips of one chip loader batch
    (``chips.batch_size`` tiles, every modality's), so that each loader batch leaves its task as a block
    of its own. Ray Data cuts a map task's output into a block only once its buffer holds more than the
    target (128 MiB by default) and slices blocks of 1.5 targets or more: with the default, a loader task
    over a planner block of ~200 tiles handed its chips on at the task's end, and the first predictor
    batch waited ~3 s for rows read long before. A loader batch is this many bytes plus its small
    metadata columns: above the target, below 1.5 of it."""
    return config.chips.batch_size * tile_chip_bytes(modalities)


def tile_chip_bytes(modalities: Sequence[Modality]) -> int:
    """Bytes of one tile's chips in the stream: float32, every modality's bands."""
    return sum(4 * len(m.bands) * m.chip_size**2 for m in modalities)


def actor_plan(config: JobConfig, cpus: float, gpus: float) -> ActorPlan:
    """Actor counts for a cluster with ``cpus`` CPUs and ``gpus`` GPUs (see the module docstring)."""
    infer = config.infer
    use_gpu = infer.use_gpu if infer.use_gpu is not None else gpus > 0
    if use_gpu and gpus <= 0:
        raise JointsslError("infer.use_gpu is true but the Ray cluster has no GPU",
                            hint="set infer.use_gpu to null (auto) or false, or add GPU nodes")
    free = cpus - 1.0  # one whole CPU for Ray Data's own tasks
    planners = infer.planners
    if use_gpu:
        predictors = infer.concurrency or max(1, int(gpus // infer.gpus_per_actor))
        predictor_cpus, threads = min(GPU_PREDICTOR_CPUS, max(free / (predictors + 1), 0.1)), None
    else:
        predictors = infer.concurrency or max(1, int(free // 4))
        predictor_cpus, threads = infer.cpus_per_actor, infer.torch_threads or 1
    room = free - planners * PLANNER_CPUS - predictors * predictor_cpus
    # One loader per two free CPUs: on 2 CPUs one loader (~13-15 ms CPU per tile, the forward ~20) keeps
    # the predictor fed, and a second one only adds a process competing for the same cores: in two
    # back-to-back pairs of 3,200-site runs, 1 loader 34.5 and 31.5 tiles/s, 2 loaders 30.0 and 28.4.
    loaders = config.chips.concurrency or max(1, min(int(room // LOADER_CPUS), math.ceil(free / 2)))
    plan = ActorPlan(planners, loaders, predictors, predictor_cpus, infer.gpus_per_actor if use_gpu else 0.0,
                     "cuda" if use_gpu else "cpu", threads)
    if plan.reserved_cpus > free + 1e-9:
        raise JointsslError(
            f"{cpus:g} CPUs cannot hold {plan.describe()} ({plan.reserved_cpus:g} CPUs reserved) and one free "
            "CPU for Ray Data's own tasks (the stream would stall)",
            hint="lower infer.concurrency, infer.cpus_per_actor, infer.planners or chips.concurrency, "
            "or raise ray.num_cpus")
    return plan
