"""The labelled sites of an index as in-memory tensors, split train / val / test, and label budgets.

Labelled sets are small (METER-ML's 86k images are ~25 GB of chips at most; the world's are a few
hundred sites), so they are read once with the data plane's batch loader and held in memory; every
protocol then trains and scores on the same tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor

from jointssl.errors import JointsslError
from jointssl.models.multimodal import ModalityInput

if TYPE_CHECKING:
    from jointssl.config import JobConfig
    from jointssl.sensors.spec import Modality

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    chips: dict[str, Tensor]
    """m -> [N C H W] float32 and m_present -> [N] bool."""
    labels: np.ndarray
    """[N K] multi-hot over FACILITY_CLASSES (a negative is all zeros)."""
    site_ids: list[str]

    def __len__(self) -> int:
        return len(self.site_ids)

    def subset(self, rows: np.ndarray) -> Split:
        return Split({k: v[rows] for k, v in self.chips.items()}, self.labels[rows],
                     [self.site_ids[i] for i in rows])


@dataclass(frozen=True)
class LabelledSites:
    inputs: list[ModalityInput]
    splits: dict[str, Split]


def labelled_sites(config: JobConfig, modalities: list[Modality]) -> LabelledSites:
    """Chips and labels of the train, val and test sites of the config's index (read on this process, or
    taken from the copy pre-training's probe read in it: :func:`jointssl.data.labelled.labelled_chips`)."""
    from jointssl.data.labelled import labelled_chips
    from jointssl.data.pipeline import load_site_table
    from jointssl.train.loop import to_tensors

    inputs = [ModalityInput.of(m) for m in modalities]
    table = load_site_table(config)
    for name in SPLITS:  # every split checked before any chip is read
        if not (table["split"] == name).any():
            raise JointsslError(f"the index has no labelled sites in the {name!r} split "
                                f"({len(table)} sites, splits: {sorted(table['split'].unique())})",
                                hint="evaluation needs train, val and test sites: index a sites file with a "
                                     "'split' column and labels (the world's sites.parquet has them)")
    batches = labelled_chips(table, modalities, config.chips.reader, config.chips.threads, keep=False)
    splits = {name: Split(to_tensors(batch, inputs), batch["labels"], list(batch["site_id"]))
              for name, batch in batches.items()}
    if not splits["test"].labels.any():
        raise JointsslError("no test site holds a facility label: per-class AUPRC is undefined",
                            hint="label some test sites, or re-split the labelled sites")
    return LabelledSites(inputs, splits)


def label_budget(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Row indices of a seeded ``fraction`` of the training sites, at least one positive per class.

    Classes are visited rarest first so a tiny budget still covers every class (METER-ML's label
    fractions are stratified the same way); negatives fill the rest in proportion.
    """
    n = len(labels)
    if fraction >= 1.0:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    want = max(1, round(fraction * n))
    chosen: list[int] = []
    for c in np.argsort(labels.sum(axis=0)):
        positives = np.flatnonzero(labels[:, c] > 0)
        covered = bool(chosen) and bool(labels[chosen, c].any())
        if len(positives) and not covered:
            chosen.append(int(rng.choice(positives)))
    rest = np.setdiff1d(np.arange(n), chosen)
    extra = rng.permutation(rest)[:max(0, want - len(chosen))]
    return np.sort(np.concatenate([np.array(chosen, dtype=int), extra.astype(int)]))
