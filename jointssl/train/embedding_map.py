"""The embedding map: validation sites' fused embeddings projected to 2-D (PCA), coloured by class.

Logged each epoch by rank 0 as an MLflow artifact (``embeddings/epoch_003.png``), so that a user sees
classes pull apart as pre-training goes on. The embeddings are the k-NN probe's query embeddings
(every modality's backbone embedding side by side), each L2-normalised as the probe compares them.
"""

from __future__ import annotations

import os

import numpy as np

from jointssl.labels import CLASS_TITLES, FACILITY_CLASSES, NEGATIVE

CLASS_ORDER = (*FACILITY_CLASSES, NEGATIVE)


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N D] -> ([N 2] coordinates on the first two principal axes, [2] explained variance ratios)."""
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"PCA needs [N D] with N >= 2, got {x.shape}")
    centred = x - x.mean(axis=0, keepdims=True)  # [N D]
    _, s, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)  # [r], [r D]
    axes = vt[:2]  # [<=2 D]
    points = centred @ axes.T  # [N <=2]
    if points.shape[1] < 2:
        points = np.pad(points, ((0, 0), (0, 2 - points.shape[1])))
    variance = s**2
    ratio = variance[:2] / variance.sum() if variance.sum() > 0 else np.zeros(2)
    return points.astype(np.float32), np.pad(ratio, (0, 2 - len(ratio)))


def site_classes(labels: np.ndarray) -> list[str]:
    """[N K] multi-hot -> one class per site for colouring: its first facility class, or 'negative'."""
    return [FACILITY_CLASSES[int(np.flatnonzero(row)[0])] if row.any() else NEGATIVE for row in labels]


def render(embeddings: np.ndarray, labels: np.ndarray, path: str, title: str) -> str:
    """Write the PNG of ``embeddings`` [N D] coloured by ``labels`` [N K] to ``path``; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # no display on workers; set here, not at import
    import matplotlib.pyplot as plt

    x = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)  # [N D]
    points, ratio = pca_2d(x)
    classes = site_classes(labels)
    multi = labels.sum(axis=1) > 1  # [N]
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=100)
    for i, name in enumerate(CLASS_ORDER):
        mask = np.array([c == name for c in classes])
        if mask.any():
            ax.scatter(points[mask, 0], points[mask, 1], s=36, color=colours(i), label=CLASS_TITLES[name],
                       edgecolors=np.where(multi[mask], "black", "none").tolist(), linewidths=1.0)
    ax.set_xlabel(f"PC 1 ({100 * ratio[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * ratio[1]:.0f}% of variance)")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8, title="class (black edge: several)", title_fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
