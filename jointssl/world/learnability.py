"""Is the world learnable, and not trivially so? Three probes on the labelled sites, scored by macro AUPRC.

1. ``supervised``: a random forest on hand-crafted spectral-spatial features (NAIP brightness/NDVI
   percentiles and texture, Sentinel-2 band medians and SWIR extremes, Sentinel-1 backscatter
   percentiles) trained on the TRUE labels. It must score well above chance: the classes are visible.
2. ``raw_stats``: logistic regression on per-band means and standard deviations of the NAIP chip:
   what "raw pixel statistics" alone give.
3. ``random_cnn``: logistic regression on global-pooled features of a randomly initialised ResNet-18
   (timm, ``in_chans`` = NAIP bands, ``pretrained=False``). It must score clearly below (1): a useful
   encoder has to be *learned*, which is what pre-training is for.

Scores are out-of-fold (k-fold over all labelled sites), so a small world still gives stable numbers.
Chance is the macro AUPRC of a constant predictor: the mean class prevalence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jointssl.labels import FACILITY_CLASSES, encode
from jointssl.sensors import load_preset
from jointssl.world.reader import WorldReader, centre_crop, read_asset

CHIP_M = 320.0  # the area a model sees around a site (the presets' chip extent)


@dataclass(frozen=True)
class LearnabilityReport:
    n_sites: int
    chance: float
    supervised: float
    raw_stats: float
    random_cnn: float

    def lines(self) -> list[str]:
        return [
            f"labelled sites: {self.n_sites}; macro AUPRC over {len(FACILITY_CLASSES)} facility classes (out-of-fold)",
            f"  chance (class prevalence)          {self.chance:.3f}",
            f"  supervised RF on features          {self.supervised:.3f}",
            f"  linear probe on raw band stats     {self.raw_stats:.3f}",
            f"  linear probe on random-init CNN    {self.random_cnn:.3f}",
        ]


def check_learnability(world_url: str, folds: int = 5, seed: int = 0) -> LearnabilityReport:
    reader = WorldReader(world_url)
    preset = load_preset("world")
    aerial, optical, sar = (c for c in preset)  # preset order: naip, sentinel-2-l2a, sentinel-1-rtc
    sites = reader.sites()
    labelled = sites[sites["labelled"]].reset_index(drop=True)
    y = np.stack([encode(list(lab)) for lab in labelled["labels"]])  # [N C]
    features, raw, chips = [], [], []
    for site_id in labelled["site_id"]:
        naip_item = reader.site_items(aerial, site_id)[0]
        gsd = naip_item["assets"]["image"]["gsd"]
        naip = centre_crop(read_asset(naip_item, "image"), int(CHIP_M / gsd))  # [4 h w]
        s2_item = reader.least_cloudy(optical, site_id)
        s2 = [centre_crop(read_asset(s2_item, b.asset)[0], int(CHIP_M / b.native_gsd_m)) for b in preset[optical].bands]
        s1 = [np.stack([centre_crop(read_asset(i, b.asset)[0], int(CHIP_M / b.native_gsd_m))
                        for b in preset[sar].bands])
              for i in reader.site_items(sar, site_id)]
        features.append(_features(naip, s2, s1))
        raw.append(np.concatenate([np.nanmean(naip, axis=(1, 2)), np.nanstd(naip, axis=(1, 2))]))
        chips.append(np.nan_to_num(naip))
    x_feat, x_raw = np.nan_to_num(np.stack(features)), np.stack(raw)
    mean = np.array([b.mean for b in preset[aerial].bands])[:, None, None]
    std = np.array([b.std for b in preset[aerial].bands])[:, None, None]
    x_cnn = _random_cnn_features(np.stack([(c - mean) / std for c in chips]).astype(np.float32), seed)
    return LearnabilityReport(
        n_sites=len(labelled),
        chance=float(y.mean(axis=0).mean()),
        supervised=_oof_auprc(x_feat, y, "forest", folds, seed),
        raw_stats=_oof_auprc(x_raw, y, "linear", folds, seed),
        random_cnn=_oof_auprc(x_cnn, y, "linear", folds, seed),
    )


def _features(naip: np.ndarray, s2: list[np.ndarray], s1: list[np.ndarray]) -> np.ndarray:
    """Hand-crafted features of one site (fixed length)."""
    red, green, blue, nir = naip
    bright = (red + green + blue) / 3
    ndvi = (nir - red) / np.maximum(nir + red, 1e-3)
    gy, gx = np.gradient(bright)
    grad = np.hypot(gx, gy)
    parts = [
        np.nanpercentile(bright, [5, 25, 50, 75, 95, 99]),
        np.nanpercentile(ndvi, [5, 25, 50, 75, 95]),
        [np.nanmean(bright > 0.8), np.nanmean((ndvi < 0.05) & (bright < 0.15)),
         np.nanmean((ndvi < 0.1) & (bright > 0.45))],
        np.nanpercentile(grad, [50, 90, 99]),
        [np.nanmean(grad > 0.2)],
    ]
    for band in s2:
        parts.append(np.nanpercentile(band, [10, 50, 90, 99]) if np.isfinite(band).any() else np.full(4, np.nan))
    db = 10 * np.log10(np.maximum(np.stack(s1), 1e-6))  # [D 2 h w]
    for pol in range(db.shape[1]):
        parts.append(np.nanpercentile(db[:, pol], [10, 50, 90, 99]))
        parts.append([np.nanmean(db[:, pol] > -6.0)])
    return np.concatenate([np.ravel(p) for p in parts]).astype(np.float32)


def _random_cnn_features(chips: np.ndarray, seed: int) -> np.ndarray:
    """[N C H W] -> [N 512] global-average-pooled features of a random-init ResNet-18."""
    import timm
    import torch

    torch.manual_seed(seed)
    model = timm.create_model("resnet18", pretrained=False, in_chans=chips.shape[1], num_classes=0).eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(chips[i:i + 32])).numpy() for i in range(0, len(chips), 32)])


def _oof_auprc(x: np.ndarray, y: np.ndarray, kind: str, folds: int, seed: int) -> float:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    from sklearn.model_selection import KFold
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = np.zeros_like(y)
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(x):
        if kind == "forest":
            model = RandomForestClassifier(300, min_samples_leaf=1, random_state=seed, n_jobs=1)
            model.fit(x[train], y[train])
            proba = model.predict_proba(x[test])
            scores[test] = np.stack([p[:, 1] if p.shape[1] > 1 else np.zeros(len(test)) for p in proba], axis=1)
        else:
            model = make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression(C=1.0, max_iter=2000)))
            model.fit(x[train], y[train])
            scores[test] = model.predict_proba(x[test])
    present = y.sum(axis=0) > 0
    return float(average_precision_score(y[:, present], scores[:, present], average="macro"))
