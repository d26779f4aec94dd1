"""The classifier saved as weights + config and registered in MLflow without a pickle; pickled models,
registered or not, are refused without being opened."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch import nn

from jointssl.classify.calibration import Calibration, choose_operating_points
from jointssl.classify.model import MethaneClassifier, Standardize, fused_dim
from jointssl.classify.ood import SensorInputs, fit_profile
from jointssl.errors import JointsslError
from jointssl.models.multimodal import MultiModalEncoder
from tests.models.test_saved import INPUTS, TINY, payload_bytes

CLASSES = ("landfill", "cafo", "mine")


def classifier(deployed: bool = True) -> MethaneClassifier:
    torch.manual_seed(0)
    dim = fused_dim(8, len(INPUTS), "concat")
    head = nn.Sequential(Standardize(torch.randn(dim), torch.rand(dim) + 0.5), nn.Linear(dim, len(CLASSES)))
    model = MethaneClassifier(MultiModalEncoder(TINY, INPUTS), head, "concat",
                              {"preset": "test", "modalities": [{"name": m.name} for m in INPUTS]}, CLASSES)
    if deployed:
        rng = np.random.default_rng(0)
        y, p = rng.random((40, 3)) > 0.6, rng.random((40, 3))

        def inputs(n: int) -> dict[str, SensorInputs]:
            return {m.name: SensorInputs(rng.normal(size=(n, 2 * m.bands)), rng.normal(size=(n, 8)),
                                         np.ones(n, dtype=bool)) for m in INPUTS}

        model.deploy(Calibration((1.5, 0.7, 1.0), (0.2, -0.1, 0.0)), choose_operating_points(y, p, CLASSES),
                     fit_profile(inputs(30), inputs(20)), {"f1": {"landfill": {"precision": 0.5}}})
    return model.eval()


def batch(n: int = 3) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {"s2": torch.randn(n, 4, 16, 16), "s1": torch.randn(n, 2, 16, 16),
            "s1_present": torch.tensor([True, False, True])}


@pytest.mark.parametrize("deployed", [True, False])
def test_a_classifier_round_trips_with_its_deployment_state(tmp_path, deployed):
    model = classifier(deployed)
    model.save(str(tmp_path / "c"))
    loaded = MethaneClassifier.load(str(tmp_path / "c"), "test")
    assert loaded.classes == CLASSES and loaded.sensors == model.sensors and loaded.fusion == "concat"
    assert loaded.deployment() == model.deployment()
    a, b = model.predict(batch()), loaded.predict(batch())
    np.testing.assert_array_equal(a.probs, b.probs)
    assert a.ood.keys() == b.ood.keys()
    for m in a.ood:
        np.testing.assert_array_equal(a.ood[m], b.ood[m])


def test_a_head_that_cannot_be_rebuilt_is_refused_at_save(tmp_path):
    model = classifier(False)
    model.head = nn.Sequential(nn.Linear(18, 4), nn.ReLU(), nn.Linear(4, 3))
    with pytest.raises(ValueError, match="ReLU"):
        model.save(str(tmp_path / "c"))


@pytest.mark.faults(fault="a registered model version whose artifact is a pickle that runs code when unpickled "
                          "(anyone who can write to the registry or bucket)",
                    expected="refused unopened by every loader with how to re-register; the payload never runs")
def test_the_registry_serves_saved_classifiers_and_refuses_pickled_versions(tmp_path, record_property):
    import mlflow

    from jointssl.classify.registry import download_classifier, load_classifier, register_classifier
    from jointssl.infer.model_ref import resolve_model

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("c", artifact_location=(tmp_path / "artifacts").as_uri())
    model = classifier()
    run = client.create_run(experiment)
    registration = register_classifier(model, "methane-classifier", 0.7, uri, run.info.run_id)
    assert registration.promoted and registration.version == "1"
    loaded = load_classifier("models:/methane-classifier@champion", uri)
    np.testing.assert_array_equal(loaded.predict(batch()).probs, model.predict(batch()).probs)
    info = mlflow.models.get_model_info("models:/methane-classifier/1")
    assert "jointssl" in info.flavors and "python_function" not in info.flavors and info.signature is not None
    assert resolve_model("models:/methane-classifier@champion", uri).operating_points.keys() == {"f1", "precision90"}
    folder = download_classifier("models:/methane-classifier/1", uri, str(tmp_path / "dl"))
    assert not [p for p in (tmp_path / "dl").rglob("*") if p.suffix in (".pth", ".pkl", ".pt")]

    # a version registered the old way: an mlflow.pytorch pickle, here one that runs code when unpickled
    old = tmp_path / "old" / "classifier"
    shutil.copytree(folder, old)
    for p in old.iterdir():
        if p.name not in ("MLmodel",):
            p.unlink() if p.is_file() else shutil.rmtree(p)
    (old / "data").mkdir()
    (old / "data" / "model.pth").write_bytes(payload_bytes(tmp_path / "ran"))
    (old / "MLmodel").write_text("flavors:\n  pytorch:\n    model_data: data\n")
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(old), "classifier")
    version = mlflow.register_model(f"runs:/{run.info.run_id}/classifier", "methane-classifier").version
    client.set_registered_model_alias("methane-classifier", "champion", version)
    for call in (lambda: load_classifier("models:/methane-classifier@champion", uri),
                 lambda: resolve_model("models:/methane-classifier@champion", uri),
                 lambda: download_classifier(f"models:/methane-classifier/{version}", uri, str(tmp_path / "dl2"))):
        with pytest.raises(JointsslError, match="is a pickle") as err:
            call()
        assert "jointssl evaluate" in str(err.value.hint)
    assert not (tmp_path / "ran").exists()
    record_property("observed", "load_classifier, resolve_model and the driver's download each raised "
                                f"'{err.value.message[:90]}...' (hint: {err.value.hint}); the payload's marker file "
                                "was never created; the saved (safetensors + JSON) version predicts equal to the "
                                "original")
    record_property("data_lost", "none")
