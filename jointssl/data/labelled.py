"""The labelled sites' chips (train, val and test splits of an index), read once per process.

Pre-training's k-NN probe reads the train and val sites; evaluation reads those and the test sites.
``jointssl demo`` runs both stages in one process, which therefore reads the train and val chips once.
Each split's chips are kept by the call that read them, keyed by that split's rows (site ids, splits,
labels, co-located items) and how they are read, so a changed index or reader reads them again; at most
:data:`KEEP_BYTES` in all (a METER-ML-sized labelled set is read twice rather than held twice). Callers
get their own copies (tensors made from them may be changed in place); the last caller (evaluation)
takes the kept chips out (``keep=False``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from jointssl.data.chips import Reader
from jointssl.sensors.spec import Modality

LABELLED_SPLITS = ("train", "val", "test")
KEEP_BYTES = 512 * 1024**2
"""The most chip bytes kept for a later caller in the same process (the demo's labelled sites: ~20 MB)."""

_KEPT: dict[str, dict[str, np.ndarray]] = {}
"""key of one split's rows -> its chip batch: what the latest call kept."""


def labelled_chips(table: pd.DataFrame, modalities: Sequence[Modality], reader: Reader = "rasterio",
                   threads: int | None = None, splits: Sequence[str] = LABELLED_SPLITS,
                   keep: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """split -> :class:`jointssl.data.dataset.ChipBatchLoader` batch of the table's rows in that split, for
    each of ``splits`` that has rows; ``keep``: hold them for a later call (up to :data:`KEEP_BYTES`)."""
    from jointssl.data.dataset import ChipBatchLoader

    loader: ChipBatchLoader | None = None
    read: dict[str, dict[str, np.ndarray]] = {}
    keys: dict[str, str] = {}
    for split in splits:
        rows = table[table["split"] == split].reset_index(drop=True)
        if rows.empty:
            continue
        keys[split] = _key(rows, modalities, reader)
        batch = _KEPT.pop(keys[split], None)
        if batch is None:
            loader = loader or ChipBatchLoader(list(modalities), reader, threads)
            batch = loader(rows)
        read[split] = batch
    _KEPT.clear()
    if not keep or sum(v.nbytes for batch in read.values() for v in batch.values()) > KEEP_BYTES:
        return read
    _KEPT.update({keys[split]: batch for split, batch in read.items()})
    return {split: {k: np.copy(v) for k, v in batch.items()} for split, batch in read.items()}


def _key(rows: pd.DataFrame, modalities: Sequence[Modality], reader: str) -> str:
    """A digest of the rows' contents, the modalities (every fact of each) and the reader."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(rows.astype(str), index=False).to_numpy().tobytes())
    digest.update(repr(list(modalities)).encode())
    digest.update(reader.encode())
    return digest.hexdigest()
