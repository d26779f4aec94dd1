"""A deployed classifier through the real registry: its calibration, operating points and input profile
survive register -> load -> infer, and the OOD guard marks imagery unlike its training inputs
(S2 reflectance shifted by -0.1, SAR in linear power instead of dB) while in-domain world tiles pass.

The classifier is the session's test classifier (tests/infer/classifier.py), deployed the way
'jointssl evaluate' deploys its best one (:func:`jointssl.evaluate.deploy.deploy`) on the world's
train / val splits (site-centred chips and chips shifted as grid tiles see them), registered under its
own name in the session's sqlite MLflow.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from jointssl.classify.model import MethaneClassifier
from jointssl.data.dataset import ChipBatchLoader
from jointssl.evaluate.data import Split
from jointssl.evaluate.deploy import Deployment, deploy
from jointssl.infer.config import InferConfig
from jointssl.infer.decision import resolve_decision
from jointssl.infer.predict import TilePredictor
from jointssl.infer.writer import PartitionWriter, RunConstants
from jointssl.labels import FACILITY_CLASSES
from jointssl.models.multimodal import ModalityInput
from jointssl.train.loop import to_tensors
from tests.infer.classifier import register, shifted

NAME = "methane-classifier-deployed"


@dataclass
class Deployed:
    model: MethaneClassifier
    deployment: Deployment
    uri: str
    """models:/<NAME>@champion"""
    held_out: dict[str, np.ndarray]
    """Chip batch of in-domain tiles the profile never saw (test + unlabelled sites, centred and shifted)."""


def rows_of(table: pd.DataFrame, splits: tuple[str, ...]) -> pd.DataFrame:
    return shifted(table[table["split"].isin(splits)].reset_index(drop=True))


def split_of(table: pd.DataFrame, modalities: list, splits: tuple[str, ...]) -> Split:
    batch = ChipBatchLoader(modalities)(rows_of(table, splits))
    return Split(to_tensors(batch, [ModalityInput.of(m) for m in modalities]), batch["labels"],
                 [str(s) for s in batch["site_id"]])


@pytest.fixture(scope="module")
def deployed(infer_world) -> Deployed:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = copy.deepcopy(infer_world.model)
        train, val, test = (split_of(infer_world.table, infer_world.modalities, (s,)) for s in ("train", "val", "test"))
        deployment = deploy(model, train, val, test, bootstrap=50, seed=0)
        register(model, infer_world.tracking_uri, NAME)
        held_out = ChipBatchLoader(infer_world.modalities)(rows_of(infer_world.table, ("test", "unlabelled")))
    finally:
        torch.set_num_threads(threads)
    return Deployed(model, deployment, f"models:/{NAME}@champion", held_out)


def tile_batch(chips: dict[str, np.ndarray], modalities: list) -> dict[str, np.ndarray]:
    """A predictor's input batch (tile columns + chips) from a chip loader batch."""
    n = len(chips["site_id"])
    batch = {"tile_id": np.asarray(chips["site_id"], dtype=object), "cell": np.array(["x0_y0"] * n, dtype=object),
             "cell_tiles": np.full(n, n), "cell_newest": np.array([""] * n, dtype=object),
             "lon": np.full(n, -99.0), "lat": np.full(n, 33.4), "epsg": np.full(n, 32614),
             "x": 500_000.0 + 400.0 * np.arange(n), "y": np.full(n, 3_700_000.0)}
    for m in modalities:
        for key in (m.name, f"{m.name}_present", f"{m.name}_item", f"{m.name}_reason"):
            batch[key] = np.asarray(chips[key])
        batch[f"{m.name}_datetime"] = np.array(["2023-06-01T00:00:00Z"] * n, dtype=object)
    return batch


def predict(uri: str, tracking_uri: str, batch: dict[str, np.ndarray], modalities: list) -> dict[str, np.ndarray]:
    predictor = TilePredictor(uri, tracking_uri, [m.name for m in modalities], FACILITY_CLASSES)
    return predictor(batch)


def test_thresholds_and_calibration_survive_register_load_infer(infer_world, deployed, tmp_path):
    from jointssl.infer.model_ref import resolve_model

    ref = resolve_model(deployed.uri, infer_world.tracking_uri)
    assert ref.operating_points["f1"] == deployed.model.thresholds("f1").to_dict()  # from the model's metadata
    assert ref.ood is not None and ref.ood["val_sites"] > 0
    decision = resolve_decision(InferConfig(), ref.operating_points, ref.classes, ref.expected)
    assert decision.source == "model" and decision.point == "f1"
    tested = deployed.deployment.test_points["f1"]["landfill"]  # the summary's expected precision / recall
    assert decision.expected["landfill"]["test_recall"] == tested.recall
    assert decision.expected["landfill"]["test_recall_ci"] == (list(tested.recall_ci) if tested.recall_ci else None)
    np.testing.assert_array_equal(decision.array(), deployed.model.thresholds("f1").thresholds())

    batch = tile_batch(deployed.held_out, infer_world.modalities)
    out = predict(ref.uri, infer_world.tracking_uri, batch, infer_world.modalities)  # loads from the registry
    tensors = to_tensors(deployed.held_out, [ModalityInput.of(m) for m in infer_world.modalities])
    calibrated = deployed.model.predict_proba(tensors)
    raw = deployed.model.predict_proba(tensors, calibrated=False)
    got = np.stack([out[f"prob_{c}"] for c in FACILITY_CLASSES], axis=1)
    np.testing.assert_allclose(got, calibrated, atol=1e-5)  # the registered calibration was applied
    assert np.abs(got - raw).max() > 1e-3
    assert all(np.isfinite(out[f"ood_{m.name}"][batch[f"{m.name}_present"]]).all() for m in infer_world.modalities)

    writer = PartitionWriter(str(tmp_path / "run"), RunConstants("r", "id", NAME, "1"), FACILITY_CLASSES,
                             [m.name for m in infer_world.modalities], 320.0, decision.thresholds)
    table, stats = writer.table(out)
    detected = table["detected"].to_pylist()
    far = np.asarray(table["out_of_distribution"])
    expected = [[c for c, p, t in zip(FACILITY_CLASSES, row, decision.array()) if p >= t] if not f else []
                for row, f in zip(got, far)]
    assert detected == expected and sum(stats["detections"].values()) == sum(map(len, expected)) > 0
    # the explicit override still works, and beats the operating point
    fixed = resolve_decision(InferConfig(threshold=0.7, operating_point="precision90"), ref.operating_points,
                             ref.classes)
    assert fixed.source == "infer.threshold" and set(fixed.thresholds) == {0.7}


def physical(z: np.ndarray, bands: list) -> np.ndarray:
    """Scaled chips [B C H W] -> physical units with the preset's per-band mean / std."""
    mean = np.array([b.mean for b in bands], dtype=np.float32)[None, :, None, None]
    std = np.array([b.std for b in bands], dtype=np.float32)[None, :, None, None]
    return z * std + mean, mean, std


def test_imagery_unlike_the_training_inputs_is_out_of_distribution(infer_world, deployed):
    by_name = {m.name: m for m in infer_world.modalities}
    names = [m.name for m in infer_world.modalities]
    held = deployed.held_out

    def flagged(chips: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = predict(deployed.uri, infer_world.tracking_uri, tile_batch(chips, infer_world.modalities),
                      infer_world.modalities)
        return {m: np.nan_to_num(out[f"ood_{m}"], nan=0.0) > 1.0 for m in names}

    in_domain = flagged(held)
    tiles = np.any(np.stack(list(in_domain.values())), axis=0)
    level = deployed.model.profile.level
    print(f"held-out in-domain tiles: {tiles.mean():.3f} out of distribution ({tiles.sum()} of {len(tiles)}); "
          f"level {level:.3f} from {deployed.model.profile.val_sites} validation tiles")
    # The threshold holds false alarms to `level` in expectation (conformal, on validation tiles): the
    # held-out rate must not be significantly above it (one-sided binomial test at 1 %). A guard whose
    # threshold were too low (e.g. the validation median: 50 % false alarms) fails here.
    from scipy.stats import binom

    assert binom.sf(tiles.sum() - 1, len(tiles), level) >= 0.01, f"{tiles.mean():.3f} false alarms for level {level}"

    s2 = dict(held)
    x, mean, std = physical(held["s2"], by_name["s2"].bands)
    s2["s2"] = ((x - 0.1 - mean) / std).astype(np.float32)  # reflectance 0.1 lower (another processing baseline)
    shifted_s2 = flagged(s2)["s2"][held["s2_present"]]
    assert shifted_s2.all(), f"{(~shifted_s2).sum()} S2 tiles shifted by -0.1 passed as in distribution"

    s1 = dict(held)
    x, mean, std = physical(held["s1"], by_name["s1"].bands)
    s1["s1"] = ((10 ** (x / 10) - mean) / std).astype(np.float32)  # linear power instead of dB
    linear = flagged(s1)["s1"][held["s1_present"]]
    assert linear.all(), f"{(~linear).sum()} S1 tiles in linear units passed as in distribution"
