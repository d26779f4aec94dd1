"""The inference driver plans, schedules and writes; only its Ray actors load models. Its checks of the
classifier (the sensor contract, the saved model's spec) import no torch (~3 s of CPU per run on 2 cores,
paid again by every scheduled run)."""

from __future__ import annotations

import json
import subprocess
import sys

DRIVER = """
import json, sys
from jointssl.config import load_job_config
from jointssl.data.pipeline import modalities_of
from jointssl.infer.model_ref import ModelRef, model_modalities
from jointssl.models import saved
from jointssl.sensors.contract import classifier_contract
import jointssl.cli, jointssl.commands.infer, jointssl.infer.run, jointssl.infer.run_folder, jointssl.classify.registry

config = load_job_config("configs/test.yaml", [])
known = modalities_of(config)
trained = ModelRef("m", "models:/m/1", "m", "1", classifier_contract(config.index.preset, known), [])
assert [m.name for m in model_modalities(config, trained)] == [m.name for m in known] != []
assert saved.read_spec(sys.argv[1], "classifier", "m")["kind"] == "classifier"
print(json.dumps(sorted(k for k in sys.modules if k.split(".")[0] == "torch")))
"""


def test_the_driver_checks_the_classifier_without_importing_torch(tmp_path):
    (tmp_path / "jointssl.json").write_text(json.dumps({"kind": "classifier", "format": 1}))
    done = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == []
