"""``jointssl evaluate`` end to end on the test world: table, plots, MLflow run, champion policy, bad input.

No Ray and no pre-training here: a seeded tiny encoder is registered as ``jointssl-encoder@current``
in a sqlite MLflow (what pre-training leaves behind), so the whole evaluation path runs in seconds.
The real pre-train -> evaluate chain runs in the demo test.
"""

from __future__ import annotations

import json

import pytest

from jointssl.cli import main

pytestmark = pytest.mark.platform_lane  # beside the end-to-end tests: the two lanes end closer together

TINY = ["--model.backbone", "resnet10t", "--model.shared_trunk", "true", "--model.small_input_stem", "false",
        "--model.embed_dim", "16", "--model.proj_hidden_dim", "16", "--model.proj_dim", "8",
        "--evaluate.train_epochs", "1", "--evaluate.probe_epochs", "50", "--evaluate.bootstrap", "20",
        "--evaluate.label_fractions", "[0.5, 1.0]"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A test world, its index, and a registered encoder, shared by the module's tests."""
    import mlflow

    from jointssl.config import load_job_config
    from jointssl.data.pipeline import modalities_of
    from jointssl.models.multimodal import ModalityInput
    from jointssl.tracking import finish_run, start_run
    from jointssl.train.loop import build_model

    root = tmp_path_factory.mktemp("evaluate")
    common = ["--config", "configs/test.yaml", "--storage.root", str(root), "--tracking.uri",
              f"sqlite:///{root}/mlflow.db"]
    assert main(["world", *common]) == 0
    assert main(["index", *common]) == 0
    config = load_job_config("configs/test.yaml", common[2:] + TINY)
    inputs = [ModalityInput.of(m) for m in modalities_of(config)]
    uri = config.tracking.uri
    run_id = start_run(config, uri, None)
    finish_run(uri, run_id, build_model(config.model, inputs, seed=0).eval(), "jointssl-encoder")
    mlflow.set_tracking_uri(uri)
    return {"root": root, "common": common, "uri": uri, "pretrain_run": run_id}


def evaluate(store, capsys, *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["evaluate", *store["common"], *TINY, *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_evaluate_writes_table_plots_run_and_champion(store, capsys):
    import mlflow

    code, out, _ = evaluate(store, capsys)
    assert code == 0, out
    summary = json.loads(out[out.index("{\n"):])
    folder = store["root"] / "evaluation" / "test"
    results = json.loads((folder / "results.json").read_text())
    keys = {r["key"] for r in results["rows"]}
    assert {"probe/ssl/fused/100", "probe/ssl/naip/100", "probe/random/fused/50", "finetune/ssl/fused/100",
            "scratch/supervised/fused/50"} <= keys and len(keys) == summary["rows"] == 14
    row = next(r for r in results["rows"] if r["key"] == "probe/ssl/fused/100")
    assert set(row["overall"]) == {"auprc", "auroc", "precision", "recall", "f1"}
    assert row["overall_auprc_ci"][0] <= row["overall"]["auprc"] <= row["overall_auprc_ci"][1]
    table = (folder / "results.md").read_text()
    assert "| AUPRC |" in table and "Overall" in table and "random init" in table and table in out
    deployment = results["deployment"]  # the registered classifier's calibration and operating points
    assert set(deployment["operating_points"]) == {"f1", "precision90"}
    for per_class in deployment["test_operating_points"].values():
        for point in per_class.values():
            if point["threshold"] is None:  # unsupported on validation: no test numbers invented
                assert point["precision"] is None and point["recall"] is None
                continue
            if point["recall_ci"] and point["recall"] == point["recall"]:
                low, high = point["recall_ci"]
                assert low <= point["recall"] + 1e-9 and point["recall"] <= high + 1e-9
    assert set(deployment["ece_test"]["cafo"]) == {"before", "after"}
    assert deployment["ood"]["val_sites"] > 0 and 0 < deployment["ood"]["level"] <= 1
    assert "## Operating points of the registered classifier" in table and "Expected calibration error" in table
    for png in ("pr_curves.png", "cooccurrence.png", "reliability.png"):
        assert (folder / png).read_bytes()[:4] == b"\x89PNG"

    client = mlflow.MlflowClient(store["uri"])
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.tags["jointssl.pretrain_run_id"] == store["pretrain_run"]
    assert run.data.metrics["probe/ssl/fused/100/auprc"] == pytest.approx(row["overall"]["auprc"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/results.md", "evaluation/pr_curves.png", "evaluation/reliability.png"} <= artifacts
    assert "calibration/ece_after/cafo" in run.data.metrics
    classifier_artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "classifier")}
    assert classifier_artifacts >= {"classifier/operating_points.json"}
    champion = client.get_model_version_by_alias("methane-classifier", "champion")
    assert champion.run_id == run.info.run_id and summary["champion"] is True

    from jointssl.classify.registry import load_classifier

    classifier = load_classifier("models:/methane-classifier@champion", store["uri"])
    assert classifier.classes[0] == "cafo" and classifier.sensors["preset"] == "world"
    # what evaluation chose travels with the registered model: calibration, thresholds, input profile
    assert classifier.calibration is not None and classifier.profile is not None
    f1 = classifier.thresholds("f1")
    assert [p["threshold"] for p in deployment["operating_points"]["f1"]["classes"].values()] == [
        p.threshold for p in f1.points]
    assert "Operating points" in (champion.description or "")
    metadata = mlflow.models.get_model_info(f"models:/methane-classifier/{champion.version}").metadata
    assert metadata["operating_points"]["f1"] == deployment["operating_points"]["f1"]

    # the same evaluation again: same seed, same score -> registered, but the champion does not move
    code, out, _ = evaluate(store, capsys)
    again = json.loads(out[out.index("{\n"):])
    assert code == 0 and again["champion"] is False and "'champion' stays" in again["decision"]
    assert client.get_model_version_by_alias("methane-classifier", "champion").version == champion.version


def test_unknown_encoder_uri_is_a_clear_error(store, capsys):
    code, _, err = evaluate(store, capsys, "--evaluate.encoder", "models:/no-such-encoder@current")
    assert code == 1 and "no-such-encoder" in err and "no registered model" in err
    code, _, err = evaluate(store, capsys, "--evaluate.encoder", "models:/jointssl-encoder@nope")
    assert code == 1 and "versions [1]" in err and "aliases ['current']" in err


def test_encoder_sensors_must_match_the_config(store, capsys):
    code, _, err = evaluate(store, capsys, "--index.modalities", "[s2]", "--chips.require", "[]")
    assert code == 1 and "was trained on modalities" in err and "s1" in err


def test_empty_label_sets_are_a_clear_error(store, capsys, tmp_path):
    import geopandas as gpd

    sites = gpd.read_parquet(store["root"] / "world" / "sites.parquet")
    sites.loc[sites["split"] == "test", "split"] = "unlabelled"
    sites.to_parquet(tmp_path / "sites.parquet")
    code, _, err = evaluate(store, capsys, "--index.sites", str(tmp_path / "sites.parquet"))
    assert code == 1 and "no labelled sites in the 'test' split" in err
