"""The inference forward equals the classifier's own ``predict`` (probabilities, top classes and OOD
scores) in float32 with channels_last, also when some sensors' embeddings come from the cache; bf16
autocast (opt-in) keeps the top classes of every tile whose top two classes are apart, within a stated
tolerance."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from jointssl.classify.ood import SensorInputs, chip_statistics, fit_profile
from jointssl.data.dataset import ChipBatchLoader
from jointssl.infer.forward import (
    FREEZE_AFTER_BATCHES,
    ForwardSettings,
    forward,
    freeze_after,
    freeze_encoders,
    prepare,
)
from jointssl.models.multimodal import ModalityInput
from jointssl.train.loop import to_tensors

FP32_ATOL = 1e-5
"""float32 with channels_last and power-of-two batches: the same arithmetic in another summation order."""
BF16_ATOL = 0.2
"""bf16 autocast of the encoders (``infer.precision: bf16``, opt-in): probabilities within this of float32's.
Measured 0.13 on the test world's classifier, whose Standardize head divides by small feature spreads and
so magnifies bf16's 3 significant digits: why 'auto' stays float32 (calibrated thresholds were chosen on
float32 probabilities)."""


@pytest.fixture(scope="module")
def deployed(infer_world):
    """The test classifier with an input profile (fitted on the world's sites), and those sites' chips."""
    import torch

    model = copy.deepcopy(infer_world.model).eval()
    batch = ChipBatchLoader(infer_world.modalities)(infer_world.table)
    tensors = to_tensors(batch, [ModalityInput.of(m) for m in infer_world.modalities])
    with torch.no_grad():
        out = model.encoder(tensors)
    inputs = {m: SensorInputs(chip_statistics(batch[m]), out.embeddings[m].numpy(), batch[f"{m}_present"])
              for m in model.modalities}
    model.profile = fit_profile(inputs, inputs)
    return model, batch, tensors


def inputs(batch, names):
    return {m: batch[m] for m in names}, {m: np.asarray(batch[f"{m}_present"], bool) for m in names}


def test_the_forward_equals_predict_in_float32_with_channels_last(deployed):
    model, batch, tensors = deployed
    expected = model.predict(tensors)
    fast = prepare(copy.deepcopy(model), ForwardSettings("cpu", channels_last=True, precision="fp32"))
    got = forward(fast, ForwardSettings("cpu", channels_last=True, precision="fp32"), *inputs(batch, model.modalities))
    np.testing.assert_allclose(got.probs, expected.probs, rtol=0, atol=FP32_ATOL)
    assert (got.probs.argmax(axis=1) == expected.probs.argmax(axis=1)).all()
    assert set(got.ood) == set(expected.ood) == set(model.modalities)
    for m in model.modalities:
        np.testing.assert_allclose(got.ood[m], expected.ood[m], rtol=1e-4, equal_nan=True)
        assert (got.encoded[m] == batch[f"{m}_present"]).all()


def test_cached_embeddings_give_the_same_output_without_encoding(deployed):
    model, batch, _ = deployed
    settings = ForwardSettings("cpu", precision="fp32")
    fast = prepare(copy.deepcopy(model), settings)
    chips, present = inputs(batch, model.modalities)
    full = forward(fast, settings, chips, present)
    n = len(present["naip"])
    hit = np.arange(n) % 2 == 0  # half the tiles' NAIP from the cache; their chips are zeros, as the loader leaves them
    chips = {**chips, "naip": np.where(hit[:, None, None, None], 0.0, chips["naip"]).astype(np.float32)}
    cached = {"naip": (hit, full.embeddings["naip"], full.chip_stats["naip"])}
    got = forward(fast, settings, chips, present, cached)
    np.testing.assert_allclose(got.probs, full.probs, rtol=0, atol=FP32_ATOL)
    for m in model.modalities:
        np.testing.assert_allclose(got.ood[m], full.ood[m], rtol=1e-4, equal_nan=True)
    np.testing.assert_array_equal(got.encoded["naip"], present["naip"] & ~hit)


def test_frozen_encoders_give_the_same_output(deployed):
    model, batch, tensors = deployed
    expected = model.predict(tensors)
    settings = ForwardSettings("cpu", precision="fp32")
    fast = prepare(copy.deepcopy(model), settings)
    frozen = freeze_encoders(fast)
    assert set(frozen) == set(model.modalities)
    got = forward(fast, settings, *inputs(batch, model.modalities), encoders=frozen)
    np.testing.assert_allclose(got.probs, expected.probs, rtol=0, atol=FP32_ATOL)
    assert (got.probs.argmax(axis=1) == expected.probs.argmax(axis=1)).all()
    for m in model.modalities:
        np.testing.assert_allclose(got.ood[m], expected.ood[m], rtol=1e-4, equal_nan=True)
    assert freeze_after(None, "cpu", compiled=False) == FREEZE_AFTER_BATCHES
    assert freeze_after(True, "cpu", compiled=False) == 0
    assert freeze_after(None, "cuda", compiled=False) is None and freeze_after(None, "cpu", compiled=True) is None
    assert freeze_after(False, "cpu", compiled=False) is None


def test_a_predictor_switches_to_frozen_encoders_after_its_first_batches(deployed):
    import time

    from jointssl.infer.predict import TilePredictor

    model, batch, _ = deployed
    predictor = TilePredictor("models:/test/1", "unused", list(model.modalities), model.classes,
                              settings=ForwardSettings("cpu", precision="fp32", freeze_after=1))
    predictor._loading.join()
    predictor._loaded = {"model": prepare(copy.deepcopy(model), predictor.settings)}
    n = len(batch["naip"])
    present = np.stack([np.asarray(batch[f"{m}_present"], bool) for m in model.modalities], axis=1)  # [B M]
    first = predictor._predict(batch, present, np.arange(n))
    assert "encoders" not in predictor._frozen  # the first batch: the model's own encoders
    deadline = time.monotonic() + 60
    predictor._predict(batch, present, np.arange(n))  # the second starts the freezing in the background
    while "encoders" not in predictor._frozen and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(predictor._frozen["encoders"]) == set(model.modalities)
    later = predictor._predict(batch, present, np.arange(n))
    np.testing.assert_allclose(later.probs, first.probs, rtol=0, atol=FP32_ATOL)


def test_bf16_autocast_keeps_the_top_classes_within_tolerance(deployed):
    model, batch, tensors = deployed
    expected = model.predict(tensors).probs
    settings = ForwardSettings("cpu", precision="bf16")
    got = forward(prepare(copy.deepcopy(model), settings), settings, *inputs(batch, model.modalities)).probs
    gap = np.abs(got - expected).max()
    print(f"bf16 autocast vs float32: max |dp| {gap:.4f} over {len(got)} sites")
    assert gap <= BF16_ATOL
    ordered = np.sort(expected, axis=1)
    clear = ordered[:, -1] - ordered[:, -2] > 2 * BF16_ATOL
    same = got.argmax(axis=1) == expected.argmax(axis=1)
    print(f"bf16 top class = float32 top class on {same.mean():.0%} of the sites ({clear.sum()} clear cut)")
    assert clear.any() and same[clear].all()
