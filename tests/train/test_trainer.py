"""The driver's checks before a run starts (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest

from jointssl.config import JobConfig
from jointssl.config.load import from_dict
from jointssl.errors import JointsslError
from jointssl.train.trainer import check_resumable


def test_a_mid_epoch_checkpoint_resumes_only_with_its_worker_count():
    config = from_dict(JobConfig, {"run": {"name": "r"}, "pretrain": {"num_workers": 2}})
    check_resumable(config, None)  # a new run
    check_resumable(config, {"step_in_epoch": 3, "world": 2})
    check_resumable(config, {"step_in_epoch": 0, "world": 4})  # at an epoch boundary any count continues
    with pytest.raises(JointsslError, match=r"(?s)stopped mid-epoch with 4 workers.*--pretrain.num_workers 4"):
        check_resumable(config, {"step_in_epoch": 3, "world": 4})


def test_the_driver_probes_the_encoder_every_worker_starts_from(tmp_path):
    """The untrained encoder's k-NN probe (run on the driver while Ray Train starts the workers): the score of
    the model the workers build from the same seed, printed and logged at step 0 of the run."""
    import mlflow
    import pandas as pd

    from jointssl.config import load_job_config
    from jointssl.data.pipeline import modalities_of
    from jointssl.train.augment import ViewSpec
    from jointssl.train.loop import ProbeSet, build_model, probe, to_tensors
    from jointssl.train.trainer import probe_untrained
    from jointssl.train.worker import WorkerSetup
    from tests.train.test_loop import tiny_model_config

    config = load_job_config("configs/test.yaml", [])
    modalities = modalities_of(config)
    model = tiny_model_config()
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("e", artifact_location=str(tmp_path / "a"))).info.run_id

    def setup_with(probe_set):
        return WorkerSetup(model, config.pretrain, config.chips, modalities, pd.DataFrame(), 7, 1, probe_set, uri,
                           run_id, [ViewSpec.of(m) for m in modalities], "r", str(tmp_path / "cache"))

    inputs = setup_with(None).inputs
    rng = np.random.default_rng(0)

    def sites(n: int) -> dict[str, np.ndarray]:
        chips = {i.name: rng.normal(size=(n, i.bands, i.chip_size, i.chip_size)).astype(np.float32) for i in inputs}
        present = {f"{i.name}_present": np.ones(n, dtype=bool) for i in inputs}
        return {**chips, **present, "labels": (rng.random((n, 7)) < 0.4).astype(np.float32)}

    bank, queries = sites(12), sites(6)
    probe_set = ProbeSet(to_tensors(bank, inputs), bank["labels"], to_tensors(queries, inputs), queries["labels"])
    lines: list[str] = []
    score = probe_untrained(setup_with(probe_set), lines.append)

    assert score == probe(build_model(model, inputs, seed=7), probe_set, config.pretrain.probe_k)  # the workers' start
    assert score != probe(build_model(model, inputs, seed=8), probe_set, config.pretrain.probe_k)
    assert lines == [f"[pretrain] k-NN probe macro AUPRC at random init: {score:.3f}"]
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "probe_macro_auprc")] == [(0, score)]
    assert probe_untrained(setup_with(None), lines.append) is None and len(lines) == 1  # no labelled sites


def test_a_failed_baseline_probe_is_a_warning_not_the_runs_failure(caplog):
    from concurrent.futures import Future

    from jointssl.train.trainer import baseline_done

    failed: Future[float | None] = Future()
    failed.set_exception(MemoryError("no room for the probe set"))
    with caplog.at_level("WARNING", logger="jointssl.train.trainer"):
        baseline_done(failed)  # does not raise
    assert "k-NN probe failed (training is not affected): MemoryError: no room for the probe set" in caplog.text
    done: Future[float | None] = Future()
    done.set_result(0.5)
    baseline_done(done)
