"""Sites -> index rows -> chips, as a streaming Ray Dataset that training and inference both consume.

One output row per site: ``site_id``, ``lon``/``lat``, ``split``, ``labels`` (multi-hot over
:data:`jointssl.labels.FACILITY_CLASSES`) and, per modality ``m``: ``m`` ([C H W] float32, normalised),
``m_valid`` ([H W] bool), ``m_present`` (bool) and ``m_reason`` ('ok' or why the chip is missing),
plus ``m_item`` (the STAC item id: provenance).

Reads from object storage are latency bound (range requests), so each batch reads all of its chips
concurrently in threads (local files: in the loader's own thread, see
:data:`jointssl.data.chips.LOCAL_READ_THREADS`); Ray runs batches in parallel across CPUs and nodes.
On small machines the number of concurrent ``map_batches`` tasks is capped below the CPU count so that
Ray Train workers and Ray Data never wait on each other for the same cores (see docs/design).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from jointssl.data.chips import Chip, Reader, read_chip, read_chips
from jointssl.labels import encode
from jointssl.sensors.spec import Modality


def site_table(index: pd.DataFrame, sites: pd.DataFrame, modalities: list[Modality],
               require: list[str] | None = None) -> pd.DataFrame:
    """One row per site with each modality's chosen item (JSON) or the reason it has none.

    ``require`` drops sites lacking any of those modalities (by policy); others are kept with the
    modality marked missing.
    """
    table = sites[["site_id", "lon", "lat", "split", "labels"]].copy()
    table["labels"] = [encode(labels) for labels in table["labels"]]
    for modality in modalities:
        rows = index[index["modality"] == modality.name].set_index("site_id")
        table[f"{modality.name}_item"] = table["site_id"].map(rows["item"]).where(lambda s: s.notna(), None)
        table[f"{modality.name}_reason"] = table["site_id"].map(rows["status"]).fillna("not_indexed")
    for name in require or []:
        table = table[table[f"{name}_reason"] == "ok"]
    return table.reset_index(drop=True)


class ChipBatchLoader:
    """``map_batches`` callable: a pandas batch of :func:`site_table` rows -> numpy batch of chips."""

    def __init__(self, modalities: list[Modality], reader: Reader = "rasterio", threads: int | None = None):
        self.modalities = modalities
        self.reader = reader
        self.threads = threads

    def __call__(self, batch: pd.DataFrame) -> dict[str, np.ndarray]:
        n = len(batch)
        chips, items = self._read(batch)
        out: dict[str, np.ndarray] = {
            "site_id": batch["site_id"].to_numpy(dtype=object),
            "lon": batch["lon"].to_numpy(dtype=np.float64),
            "lat": batch["lat"].to_numpy(dtype=np.float64),
            "split": batch["split"].to_numpy(dtype=object),
            "labels": np.stack(list(batch["labels"])).astype(np.float32),  # [B K]
        }
        for modality in self.modalities:
            name, size = modality.name, modality.chip_size
            pixels = np.zeros((n, len(modality.bands), size, size), dtype=np.float32)  # [B C H W]
            valid = np.zeros((n, size, size), dtype=bool)  # [B H W]
            reasons = np.empty(n, dtype=object)
            for i in range(n):
                result = chips[(i, name)]
                if isinstance(result, Chip):
                    pixels[i], valid[i], reasons[i] = result.pixels, result.valid, "ok"
                else:
                    reasons[i] = result
            out[name], out[f"{name}_valid"] = pixels, valid
            out[f"{name}_present"] = reasons == "ok"
            out[f"{name}_reason"] = reasons
            out[f"{name}_item"] = np.array([items.get((i, name), "") for i in range(n)], dtype=object)
        return out

    def _read(self, batch: pd.DataFrame) -> tuple[dict[tuple[int, str], Chip | str], dict[tuple[int, str], str]]:
        """Every chip of the batch, read together; (row, modality) -> Chip or the reason it is missing."""
        chips: dict[tuple[int, str], Chip | str] = {}
        items: dict[tuple[int, str], str] = {}
        requests, keys = [], []
        for i, row in enumerate(batch.itertuples(index=False)):
            for modality in self.modalities:
                item_json = getattr(row, f"{modality.name}_item")
                if not item_json:
                    chips[(i, modality.name)] = str(getattr(row, f"{modality.name}_reason"))
                    continue
                item = json.loads(item_json)
                items[(i, modality.name)] = item["id"]
                requests.append((item, modality, float(row.lon), float(row.lat)))
                keys.append((i, modality.name))
        if self.reader == "stackstac":
            results = [read_chip(*request, reader="stackstac") for request in requests]
        else:
            results = read_chips(requests, threads=self.threads)
        for key, result in zip(keys, results):
            chips[key] = result if isinstance(result, Chip) else result.reason
        return chips, items


def chip_dataset(table: pd.DataFrame, modalities: list[Modality], reader: Reader = "rasterio",
                 batch_size: int = 16, concurrency: int | None = None, num_cpus: float = 1.0,
                 threads: int | None = None) -> Any:
    """The streaming Ray Dataset of chips for ``table`` (from :func:`site_table`), read by a fixed pool of
    ``concurrency`` loader actors. Pre-training reads chips in its workers instead (:mod:`jointssl.train.stream`);
    the chip cache is :mod:`jointssl.data.chip_cache`."""
    import ray

    blocks = max(1, min(len(table) // max(batch_size, 1), 200))
    return ray.data.from_pandas(table).repartition(blocks).map_batches(
        ChipBatchLoader,
        fn_constructor_args=(modalities, reader, threads),
        batch_size=batch_size,
        batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=concurrency or _default_concurrency()),
        num_cpus=num_cpus,
    )


def skip_counts(reasons: dict[str, Any]) -> dict[str, dict[str, int]]:
    """modality -> reason -> count, from the ``m_reason`` columns of chip batches (non-'ok' only)."""
    counts: dict[str, dict[str, int]] = {}
    for name, values in reasons.items():
        counter = Counter(str(v) for v in values if str(v) != "ok")
        counts[name] = dict(sorted(counter.items()))
    return counts


def _default_concurrency() -> int:
    """At most CPUs - 1 loader actors (at least 1): leaves a core for the consumer on small machines."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]  # unannotated in ray
    return max(1, cpus - 1)
