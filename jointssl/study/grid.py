"""The trials of a study: objectives x sensor subsets x seeds, each with its run name and config overrides."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from jointssl.config.load import ConfigError
from jointssl.config.schema import JobConfig


@dataclass(frozen=True)
class Trial:
    """One pre-training run and its evaluation."""

    objective: str
    modalities: tuple[str, ...]
    seed: int
    name: str
    """Its run.name: the same trial always gets the same name, so a re-run resumes its checkpoint."""

    @property
    def sensors(self) -> str:
        return "+".join(self.modalities)

    def overrides(self) -> list[str]:
        """Command-line overrides that turn the study's config into this trial's config."""
        out = ["--run.name", self.name, "--run.seed", str(self.seed), "--model.objective.name", self.objective,
               "--index.modalities", "[" + ", ".join(self.modalities) + "]"]
        if len(self.modalities) == 1:  # one sensor: its positives are two augmentations of each chip
            out += ["--pretrain.augment.enabled", "true"]
        return out


def study_name(config: JobConfig) -> str:
    return config.study.name or config.run.name


def trials(config: JobConfig) -> list[Trial]:
    """Every trial of the study, in a stable order (objective, subset, seed)."""
    s = config.study
    known = list(config.index.modalities)
    subsets = [tuple(m) for m in s.modalities] if s.modalities is not None else _all_subsets(known)
    for i, subset in enumerate(subsets):
        unknown = [m for m in subset if m not in known]
        if unknown:
            raise ConfigError(f"study.modalities[{i}]", f"{', '.join(unknown)} not in index.modalities "
                              f"({', '.join(known)}); a study's subsets are drawn from the indexed sensors")
    # each subset in the order of index.modalities, so names and overrides do not depend on how it was typed
    subsets = [tuple(m for m in known if m in subset) for subset in subsets]
    name = study_name(config)
    return [Trial(o, mods, seed, f"{name}-{o}-{'+'.join(mods)}-s{seed}")
            for o, mods, seed in itertools.product(s.objectives, subsets, s.seeds)]


def _all_subsets(modalities: list[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset, largest first: [(a, b, c), (a, b), (a, c), (b, c), (a,), (b,), (c,)]."""
    return [c for k in range(len(modalities), 0, -1) for c in itertools.combinations(modalities, k)]
