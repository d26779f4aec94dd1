"""The labelled sites' chips (train, val and test splits of an index), read once per process.

Pre-training's k-NN probe (train and val sites) and evaluation (all three splits) read the same chips;
``jointssl demo`` runs both stages in one process, which therefore reads them once. The chips are kept
for the latest index only, keyed by the labelled rows' contents (site ids, splits, labels, co-located
items) and how they are read, so a changed index or reader reads them again; at most
:data:`KEEP_BYTES` of them (a METER-ML-sized labelled set is read twice rather than held twice). Callers
get their own copies (tensors made from them may be changed in place); the last one (evaluation) takes
the kept chips out (``keep=False``).
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

_LATEST: dict[str, dict[str, dict[str, np.ndarray]]] = {}
"""key -> split -> chip batch: the latest index's labelled chips (one entry)."""


def labelled_chips(table: pd.DataFrame, modalities: Sequence[Modality], reader: Reader = "rasterio",
                   threads: int | None = None, keep: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """split -> :class:`jointssl.data.dataset.ChipBatchLoader` batch of the table's rows in that split (only
    the labelled splits that have rows); ``keep``: hold them for a later call (up to :data:`KEEP_BYTES`)."""
    from jointssl.data.dataset import ChipBatchLoader

    rows = table[table["split"].isin(LABELLED_SPLITS)]
    key = _key(rows, modalities, reader)
    read = _LATEST.pop(key, None)
    _LATEST.clear()
    if read is None:
        loader = ChipBatchLoader(list(modalities), reader, threads)
        read = {split: loader(rows[rows["split"] == split].reset_index(drop=True))
                for split in LABELLED_SPLITS if (rows["split"] == split).any()}
    if not keep or sum(v.nbytes for batch in read.values() for v in batch.values()) > KEEP_BYTES:
        return read
    _LATEST[key] = read
    return {split: {k: np.copy(v) for k, v in batch.items()} for split, batch in read.items()}


def _key(rows: pd.DataFrame, modalities: Sequence[Modality], reader: str) -> str:
    """A digest of the rows' contents, the modalities (every fact of each) and the reader."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(rows.astype(str), index=False).to_numpy().tobytes())
    digest.update(repr(list(modalities)).encode())
    digest.update(reader.encode())
    return digest.hexdigest()
