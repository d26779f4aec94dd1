"""The ``study`` section of a job config: which objectives, sensor subsets and seeds make the grid.

Each trial is one pre-training run (``pretrain``) followed by the evaluation protocol (``evaluate``) on
the same index; every value here is checked when the config is read (unknown objective, empty subset,
duplicates), and subsets are checked against ``index.modalities`` when the grid is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from jointssl.config.load import ConfigError

OBJECTIVES = ("infonce", "vicreg", "barlow_twins", "byol")
"""The joint-embedding objectives of jointssl.losses (model.objective.name)."""


@dataclass(frozen=True)
class StudyConfig:
    name: str | None = None
    """Study name: outputs under <storage.root>/study/<name>, trial run names '<name>-<objective>-<sensors>-s<seed>';
    null: run.name."""
    objectives: list[str] = field(default_factory=lambda: list(OBJECTIVES))
    """Objectives to pre-train with (model.objective.name); default all four."""
    modalities: list[list[str]] | None = None
    """Sensor subsets to pre-train on, e.g. [[naip, s2, s1], [s2]]; null: every non-empty subset of index.modalities."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """run.seed of each repetition; the table reports the mean over seeds."""
    concurrency: int | None = field(default=None, metadata={"min": 1})
    """Trials in flight at once; null: as many as the Ray cluster's CPUs (GPUs with pretrain.use_gpu) hold, each
    trial claiming trial_cpus for its driver / evaluation process plus its Ray Train workers."""
    trial_cpus: float = field(default=1.0, metadata={"min": 0.0})
    """CPUs a trial's own process (pre-training driver, then the single-process evaluation) is counted for."""
    bootstrap: int = field(default=1000, metadata={"min": 10})
    """Resamples of the test sites for the table's intervals and the paired comparisons."""

    def __post_init__(self) -> None:
        if not self.objectives:
            raise ConfigError("objectives", f"give at least one of {', '.join(OBJECTIVES)}")
        for o in self.objectives:
            if o not in OBJECTIVES:
                raise ConfigError("objectives", f"unknown objective {o!r}; known: {', '.join(OBJECTIVES)}")
        _no_duplicates("objectives", self.objectives)
        if not self.seeds:
            raise ConfigError("seeds", "give at least one seed, e.g. [0, 1, 2]")
        if any(s < 0 for s in self.seeds):
            raise ConfigError("seeds", "seeds are non-negative integers")
        _no_duplicates("seeds", self.seeds)
        if self.modalities is not None:
            if not self.modalities:
                raise ConfigError("modalities", "give at least one sensor subset, or null for every subset")
            for i, subset in enumerate(self.modalities):
                if not subset:
                    raise ConfigError(f"modalities[{i}]", "an empty sensor subset: each needs at least one modality")
                _no_duplicates(f"modalities[{i}]", subset)
            _no_duplicates("modalities", [tuple(sorted(s)) for s in self.modalities])


def _no_duplicates(key: str, values: Sequence[object]) -> None:
    seen = set()
    for v in values:
        if v in seen:
            raise ConfigError(key, f"{v!r} is given twice")
        seen.add(v)
