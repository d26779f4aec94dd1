"""The predictor actor: loads the classifier once (in the background, from its start; from the driver's
download when on the driver's node, else from the registry), then turns chip batches into per-tile
predictions.

One actor holds one copy of the model (on its GPU, or on CPU with a fixed number of torch threads);
Ray Data's actor pool sends it batches of ``infer.batch_size`` tiles. Missing modalities are the
classifier's business (see :mod:`jointssl.classify.model`): a tile is sent with the chips it has and
``m_present`` False for the others, and the output names the modalities that were used. Tiles with no
chip at all are not sent to the model; they keep a status that says why.

Output (numpy, one row per tile, no pixels): the tile columns, ``status`` ('ok', 'no_imagery': no item
of any modality, 'unreadable': items but no readable chip), ``prob_<class>`` per class (calibrated when
the classifier carries a calibration; NaN when not classified), ``top_class``/``top_score``,
``modalities`` ('naip+s2'), per modality ``ood_<m>`` (the out-of-distribution score of that sensor's
chip in units of the classifier's threshold, > 1: unlike its training inputs; NaN: sensor absent or a
classifier without input profile), and per modality ``m_item``, ``m_datetime`` and ``m_reason`` (provenance).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from jointssl.infer.forward import ForwardOutput, ForwardSettings, forward, freeze_encoders, prepare
from jointssl.infer.tile_chips import PASSTHROUGH

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DownloadedModel:
    """The classifier's files (weights + config) as the driver downloaded them
    (:func:`jointssl.classify.registry.download_classifier`): a folder on the driver's node."""

    path: str
    node_id: str | None = None
    """The Ray node that has the file (None: this process's machine, no Ray)."""

    def readable_here(self) -> bool:
        if self.node_id is None:
            return True
        import ray

        return ray.is_initialized() and ray.get_runtime_context().get_node_id() == self.node_id


class TilePredictor:
    """``map_batches`` callable (an actor): chip batch (numpy) -> predictions (numpy).

    ``downloaded``: the driver's copy of the classifier. An actor on the driver's node loads it (no MLflow
    import, no registry round trip); an actor elsewhere, or with nothing downloaded, loads ``model_uri`` from
    the registry.
    """

    def __init__(self, model_uri: str, tracking_uri: str, modalities: Sequence[str], classes: Sequence[str],
                 device: str = "cpu", threads: int | None = None, downloaded: DownloadedModel | None = None,
                 settings: ForwardSettings | None = None, cache: bool = False):
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self.downloaded = downloaded
        self.device = device
        self.settings = settings or ForwardSettings(device)
        self.cache = cache
        """Emit what the embedding cache keeps (``m_embedding``, ``m_chip_stats``, ``m_encoded``)."""
        self.threads = threads
        self.modalities = list(modalities)
        self.classes = tuple(classes)
        self.model: Any = None
        self.batches = 0
        """Batches predicted so far."""
        self._frozen: dict[str, Any] = {}
        """'encoders': :func:`freeze_encoders`'s modules once ready (settings.freeze_after)."""
        self._loaded: dict[str, Any] = {}
        # Load in the background: the actor is ready at once and the model loads while the planners
        # search and the loaders read, instead of after the first batch arrives.
        self._loading = threading.Thread(target=self._load_into, args=(self._loaded,), daemon=True)
        self._loading.start()

    def _load_into(self, slot: dict[str, object]) -> None:
        try:
            slot["model"] = self.load()
        except BaseException as err:
            slot["error"] = err

    def load(self) -> Any:
        if self.downloaded is not None and self.downloaded.readable_here():
            from jointssl.classify.registry import load_downloaded_classifier

            model: Any = load_downloaded_classifier(self.downloaded.path, self.model_uri)
        else:
            from jointssl.classify.registry import load_classifier

            model = load_classifier(self.model_uri, self.tracking_uri)
        model = prepare(model, self.settings)
        if tuple(model.classes) != self.classes:
            raise ValueError(f"{self.model_uri} predicts {model.classes}, the run expected {self.classes}")
        return model

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["tile_id"])
        present = np.stack([np.asarray(batch[f"{m}_present"], dtype=bool) for m in self.modalities], axis=1)  # [B M]
        probs = np.full((n, len(self.classes)), np.nan, dtype=np.float32)  # [B K]
        ood = {m: np.full(n, np.nan, dtype=np.float32) for m in self.modalities}  # m -> [B]
        rows = np.flatnonzero(present.any(axis=1))
        result = None
        if len(rows):
            result = self._predict(batch, present, rows)
            probs[rows] = result.probs
            for m, scores in result.ood.items():
                ood[m][rows] = scores
        out = predictions(batch, probs, present, self.modalities, self.classes, ood)
        if self.cache:
            out.update(cache_columns(batch, self.modalities, rows, result))
        _release_free_memory()
        return out

    def _predict(self, batch: dict[str, np.ndarray], present: np.ndarray, rows: np.ndarray) -> ForwardOutput:
        import torch

        if self.model is None:
            self._loading.join()
            if "error" in self._loaded:
                raise self._loaded["error"]
            self.model = self._loaded["model"]
            if self.threads:
                torch.set_num_threads(self.threads)  # in the thread that runs the forward
        if self.batches == self.settings.freeze_after:
            threading.Thread(target=self._freeze_into, args=(self.model, self._frozen), daemon=True).start()
        self.batches += 1
        chips = {m: batch[m][rows] for m in self.modalities}  # m -> [b C H W]
        flags = {m: present[rows, k] for k, m in enumerate(self.modalities)}  # m -> [b]
        cached = {m: (np.asarray(batch[f"{m}_cached"], bool)[rows], np.asarray(batch[f"{m}_embedding"])[rows],
                      np.asarray(batch[f"{m}_chip_stats"])[rows])
                  for m in self.modalities if f"{m}_cached" in batch}
        return forward(self.model, self.settings, chips, flags, cached,
                       self._frozen.get("encoders"))  # probs [b K], OOD m -> [b], ...

    @staticmethod
    def _freeze_into(model: Any, slot: dict[str, Any]) -> None:
        """The frozen encoders into ``slot`` (in the background: the batches meanwhile use the model's own);
        a model that cannot be frozen keeps them, with a warning."""
        try:
            slot["encoders"] = freeze_encoders(model)
        except Exception as err:  # torch.jit cannot trace every backbone; the eager forward is the same function
            log.warning("infer: encoders not frozen for inference (%s: %s); they run as loaded",
                        type(err).__name__, str(err).splitlines()[0][:200] if str(err) else "")


def _release_free_memory() -> None:
    """Hand memory freed by the forward back to the OS (glibc keeps it otherwise): activations of
    varying shapes (the classifier encodes each sensor's present rows only) fragment the heap, and a
    long run's actor would creep up with the number of batches instead of staying at one batch's peak.
    What remains is oneDNN's per-shape primitive cache: bounded by the distinct shapes (at most
    batch_size per sensor), measured at ~30 MB over 60 batches of resnet18; disabling it costs 23 %."""
    global _TRIM
    if _TRIM is None:
        import ctypes

        try:
            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc: nothing to do
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM: Any = None
"""glibc's malloc_trim once looked up, False where there is none (None: not looked up yet)."""


def predictions(batch: dict[str, np.ndarray], probs: np.ndarray, present: np.ndarray, modalities: Sequence[str],
                classes: Sequence[str], ood: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The output columns of a batch, from its probabilities [B K], presence [B M] and OOD scores m -> [B]."""
    n = len(probs)
    out: dict[str, np.ndarray] = {c: np.asarray(batch[c]) for c in PASSTHROUGH}
    classified = np.asarray(present.any(axis=1), dtype=bool)  # [B]
    has_item = np.zeros(n, dtype=bool)
    for m in modalities:
        has_item |= np.array([bool(v) for v in batch[f"{m}_item"]])
    out["status"] = np.where(classified, "ok", np.where(has_item, "unreadable", "no_imagery")).astype(object)
    for k, c in enumerate(classes):
        out[f"prob_{c}"] = probs[:, k]
    top = np.nan_to_num(probs, nan=-1.0).argmax(axis=1) if len(classes) else np.zeros(n, dtype=int)
    out["top_class"] = np.array([classes[t] if ok else None for t, ok in zip(top, classified)], dtype=object)
    out["top_score"] = np.where(classified, probs[np.arange(n), top], np.nan).astype(np.float32)
    out["modalities"] = np.array(["+".join(m for m, p in zip(modalities, row) if p) for row in present], dtype=object)
    for m in modalities:
        out[f"ood_{m}"] = (ood or {}).get(m, np.full(n, np.nan, dtype=np.float32)).astype(np.float32)
    for m in modalities:
        for key in ("item", "datetime", "reason"):
            out[f"{m}_{key}"] = np.asarray(batch[f"{m}_{key}"], dtype=object)
    return out


def cache_columns(batch: dict[str, np.ndarray], modalities: Sequence[str], rows: np.ndarray,
                  result: ForwardOutput | None) -> dict[str, np.ndarray]:
    """Per sensor what the driver caches: ``m_encoded`` [B], ``m_embedding`` [B F], ``m_chip_stats`` [B 2C],
    ``m_item_key`` [B] (rows without a forward: nothing encoded)."""
    n = len(batch["tile_id"])
    out: dict[str, np.ndarray] = {}
    for m in modalities:
        encoded = np.zeros(n, dtype=bool)
        emb = np.zeros_like(np.asarray(batch[f"{m}_embedding"], dtype=np.float32))  # [B F]
        stats = np.zeros_like(np.asarray(batch[f"{m}_chip_stats"], dtype=np.float64))  # [B 2C]
        if result is not None and m in result.encoded:
            encoded[rows] = result.encoded[m]
            emb[rows], stats[rows] = result.embeddings[m], result.chip_stats[m]
        out[f"{m}_encoded"] = encoded
        out[f"{m}_cached"] = np.asarray(batch[f"{m}_cached"], dtype=bool)
        out[f"{m}_embedding"], out[f"{m}_chip_stats"] = emb, stats
        out[f"{m}_item_key"] = np.asarray(batch[f"{m}_item_key"], dtype=object)
    return out
