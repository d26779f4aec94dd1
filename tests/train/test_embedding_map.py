"""The embedding map: PCA against a reference, one colour per class, a PNG on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jointssl.labels import FACILITY_CLASSES
from jointssl.train.embedding_map import pca_2d, render, site_classes


def test_pca_finds_the_main_axes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)) * np.array([5.0, 2.0, 0.1])  # variance mostly along x, then y
    points, ratio = pca_2d(x)
    assert points.shape == (200, 2)
    assert abs(np.corrcoef(points[:, 0], x[:, 0])[0, 1]) > 0.99
    assert abs(np.corrcoef(points[:, 1], x[:, 1])[0, 1]) > 0.99
    assert ratio[0] > ratio[1] > 0 and ratio.sum() <= 1
    with pytest.raises(ValueError, match="N >= 2"):
        pca_2d(np.zeros((1, 4)))


def test_site_classes_first_class_or_negative():
    labels = np.zeros((3, len(FACILITY_CLASSES)), dtype=np.float32)
    labels[0, 1] = 1
    labels[1, [2, 4]] = 1
    assert site_classes(labels) == ["landfill", "coal_mine", "negative"]


def test_render_writes_a_png(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.eye(len(FACILITY_CLASSES) + 1)[rng.integers(0, 7, 30)][:, :len(FACILITY_CLASSES)]
    path = render(rng.normal(size=(30, 16)), labels, str(tmp_path / "sub" / "epoch_001.png"), "test")
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
