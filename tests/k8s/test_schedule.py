"""``jointssl schedule`` and jointssl.ops.rayjob: the RayJob built from the shipped template, its creation
through a stand-in for the Kubernetes API, and following it to an outcome. No cluster, no server."""

from __future__ import annotations

import copy
import datetime
import json
import sys
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from jointssl.cli import main
from jointssl.config import ConfigError
from jointssl.errors import JointsslError
from jointssl.ops import rayjob
from tests.k8s.conftest import INFER_TEMPLATE, REPO

NOW = datetime.datetime(2026, 11, 25, 2, 0, 7, tzinfo=datetime.timezone.utc)
IMAGE = "registry.example.com/jointssl:0.1.0-cpu"


def template() -> dict[str, Any]:
    return rayjob.load_template(INFER_TEMPLATE)


def build(**kwargs: Any) -> dict[str, Any]:
    options = {"name": "infer-20261125-020007", "now": NOW, "namespace": "jointssl",
               "images": {"jointssl": IMAGE}, "replicas": {"cpu": 8}}
    return rayjob.build_rayjob(template(), **{**options, **kwargs})


def pods(job: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = job["spec"]["rayClusterSpec"]
    templates = [cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]
    return [t["spec"] for t in [*templates, job["spec"]["submitterPodTemplate"]]]


def test_the_rayjob_is_the_template_under_a_run_name_with_labels():
    job = build()
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    assert job["metadata"]["name"] == "infer-20261125-020007" and job["metadata"]["namespace"] == "jointssl"
    assert job["metadata"]["labels"] == {
        "app.kubernetes.io/part-of": "jointssl",
        "app.kubernetes.io/component": "inference",
        "app.kubernetes.io/managed-by": "jointssl-schedule",
        "jointssl.io/scheduled-at": "20261125T020007Z",
    }
    assert "status" not in job and set(job["metadata"]) == {"name", "namespace", "labels"}


def test_the_rayjob_spec_runs_incremental_inference_and_cleans_up_after_itself():
    spec = build()["spec"]
    assert spec["entrypoint"] == "python jobs/infer.py --config configs/k8s-infer.yaml --incremental"
    assert spec["shutdownAfterJobFinishes"] is True
    assert 0 < spec["ttlSecondsAfterFinished"] <= 3600
    assert spec["activeDeadlineSeconds"] > 0 and spec["backoffLimit"] >= 1
    assert spec["submissionMode"] == "K8sJobMode"
    assert spec["rayClusterSpec"]["rayVersion"] == "2.60.0"
    assert spec["rayClusterSpec"]["authOptions"] == {"mode": "token"}


def test_every_pod_gets_the_image_the_account_and_resources():
    job = build()
    for pod in pods(job):
        assert pod["serviceAccountName"] == "jointssl-ray" and pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            assert container["image"] == IMAGE
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert [c["image"] for c in rayjob.containers(job)] == [IMAGE] * 3


def test_replicas_fix_the_size_of_a_worker_group():
    (group,) = build(replicas={"cpu": 8})["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (8, 8, 8)
    (group,) = build(replicas={})["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (2, 2, 2)


def test_building_leaves_the_template_untouched():
    original = template()
    kept = copy.deepcopy(original)
    rayjob.build_rayjob(original, name="infer-x", now=NOW, images={"jointssl": IMAGE}, replicas={"cpu": 3})
    assert original == kept


def test_run_names_are_utc_timestamps_short_enough_for_kuberay():
    eastern = NOW.astimezone(datetime.timezone(datetime.timedelta(hours=-5)))
    name = rayjob.run_name("infer", eastern)
    assert name == "infer-20261125-020007"
    assert len(name) <= rayjob.MAX_NAME_LENGTH
    with pytest.raises(ConfigError, match="DNS label"):
        build(name="x" * (rayjob.MAX_NAME_LENGTH + 1))
    with pytest.raises(ConfigError, match="DNS label"):
        build(name="Infer_Nightly")


def test_images_and_groups_that_are_not_in_the_template_are_errors():
    with pytest.raises(ConfigError, match="jointsl is not an image of the template"):
        build(images={"jointsl": IMAGE})
    with pytest.raises(ConfigError, match="no worker group 'gpu'"):
        build(replicas={"gpu": 2})


@pytest.mark.parametrize(("reference", "name"), [
    ("jointssl", "jointssl"),
    ("jointssl:0.1.0-cpu", "jointssl"),
    ("registry:5000/team/jointssl:0.1.0-gpu", "registry:5000/team/jointssl"),
    ("registry:5000/team/jointssl", "registry:5000/team/jointssl"),
    ("jointssl:1@sha256:abc", "jointssl"),
])
def test_image_names_drop_tag_and_digest_but_keep_a_registry_port(reference, name):
    assert rayjob._image_name(reference) == name


@pytest.mark.parametrize(("edit", "key"), [
    (lambda t: t.update(kind="RayCluster"), "kind"),
    (lambda t: t["spec"].pop("entrypoint"), "spec.entrypoint"),
    (lambda t: t["spec"].pop("rayClusterSpec"), "spec.rayClusterSpec"),
    (lambda t: t["metadata"].update(name="Infer"), "metadata.name"),
])
def test_a_broken_template_exits_2_naming_the_key(tmp_path, capsys, edit, key):
    broken = yaml.safe_load(INFER_TEMPLATE.read_text())
    edit(broken)
    path = tmp_path / "rayjob.yaml"
    path.write_text(yaml.safe_dump(broken))
    assert main(["schedule", "--template", str(path), "--dry-run"]) == 2
    assert f"config key '{key}'" in capsys.readouterr().err


def test_dry_run_prints_the_rayjob_without_a_cluster(capsys):
    code = main(["schedule", "--template", str(INFER_TEMPLATE), "--namespace", "jointssl", "--dry-run",
                 "--image", f"jointssl={IMAGE}", "--replicas", "cpu=4", "--name", "infer-manual"])
    assert code == 0
    job = yaml.safe_load(capsys.readouterr().out)
    assert job["metadata"]["name"] == "infer-manual" and job["metadata"]["namespace"] == "jointssl"
    assert job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] == 4
    assert job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] == IMAGE


def test_dry_run_json_names_the_run_by_the_clock(capsys):
    assert main(["schedule", "--template", str(INFER_TEMPLATE), "--dry-run", "--output", "json"]) == 0
    job = json.loads(capsys.readouterr().out)
    name = job["metadata"]["name"]
    assert name.startswith("infer-20") and len(name) == len("infer-20261125-020007")


@pytest.mark.parametrize("argv", [["--image", "jointssl"], ["--replicas", "cpu=0"], ["--replicas", "cpu=x"]])
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as info:
        main(["schedule", "--template", str(INFER_TEMPLATE), "--dry-run", *argv])
    assert info.value.code == 2


class FakeApi:
    """The two CustomObjectsApi calls jointssl makes, recorded; statuses are returned one per GET."""

    def __init__(self, statuses: list[Any] | None = None, error: Exception | None = None):
        self.created: list[tuple[Any, ...]] = []
        self.statuses = list(statuses or [])
        self.error = error
        self.gets = 0

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        if self.error:
            raise self.error
        self.created.append((group, version, namespace, plural, body))

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        assert (group, version, plural) == ("ray.io", "v1", "rayjobs")
        self.gets += 1
        status = self.statuses.pop(0)
        if isinstance(status, Exception):
            raise status
        return {"metadata": {"name": name}, "status": status}


def api_error(status: int, reason: str) -> ApiException:
    err = ApiException(status=status, reason=reason)
    err.body = json.dumps({"message": f"{reason.lower()} by the test"})
    return err


def test_create_sends_the_rayjob_to_its_namespace():
    api, job = FakeApi(), build()
    rayjob.create(api, job)
    assert api.created == [("ray.io", "v1", "jointssl", "rayjobs", job)]


@pytest.mark.parametrize(("status", "reason", "hint"), [
    (403, "Forbidden", "Role and RoleBinding jointssl-scheduler"),
    (404, "Not Found", "KubeRay operator"),
    (409, "Conflict", "exists already"),
])
def test_api_refusals_say_what_to_check(status, reason, hint):
    with pytest.raises(JointsslError) as info:
        rayjob.create(FakeApi(error=api_error(status, reason)), build())
    assert f"{status} {reason}" in str(info.value) and hint in info.value.hint
    assert f"{reason.lower()} by the test" in str(info.value)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


RUNNING = {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}


def test_wait_follows_the_rayjob_to_success():
    clock = Clock()
    api = FakeApi([{}, {"jobDeploymentStatus": "Initializing"}, RUNNING,
                   {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}])
    result = rayjob.wait(api, "jointssl", "infer-x", timeout_s=3600, poll_s=30, clock=clock, sleep=clock.sleep)
    assert result.succeeded and api.gets == 4 and clock.now == 90


def test_wait_reports_a_failed_run_with_kuberays_reason():
    clock = Clock()
    failed = {"jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "reason": "AppFailed",
              "message": "job exited with code 1"}
    result = rayjob.wait(FakeApi([RUNNING, failed]), "jointssl", "infer-x", timeout_s=3600,
                         clock=clock, sleep=clock.sleep)
    assert not result.succeeded
    assert result.describe() == "Failed, job FAILED: AppFailed job exited with code 1"


def test_a_deadline_that_killed_the_cluster_is_a_failure_even_without_a_job_status():
    result = rayjob.outcome({"status": {"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded"}})
    assert result is not None and not result.succeeded and "never started" in result.describe()
    assert rayjob.outcome({"status": RUNNING}) is None


def test_wait_gives_up_at_the_timeout():
    clock = Clock()
    with pytest.raises(JointsslError, match="has not finished within 60 s"):
        rayjob.wait(FakeApi([RUNNING] * 10), "jointssl", "infer-x", timeout_s=60, poll_s=30,
                    clock=clock, sleep=clock.sleep)
    assert clock.now == 60


def test_wait_notices_a_deleted_rayjob():
    clock = Clock()
    with pytest.raises(JointsslError, match="deleted before it finished"):
        rayjob.wait(FakeApi([RUNNING, api_error(404, "Not Found")]), "jointssl", "infer-x", timeout_s=600,
                    clock=clock, sleep=clock.sleep)


@pytest.mark.parametrize(("final", "code"), [
    ({"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}, 0),
    ({"jobDeploymentStatus": "Complete", "jobStatus": "STOPPED"}, 1),
    ({"jobDeploymentStatus": "Failed", "jobStatus": "FAILED"}, 1),
])
def test_the_command_creates_waits_and_exits_by_the_outcome(monkeypatch, capsys, final, code):
    api = FakeApi([RUNNING, final])
    monkeypatch.setattr(rayjob, "connect", lambda: (api, "from-kubeconfig"))
    argv = ["schedule", "--template", str(INFER_TEMPLATE), "--image", f"jointssl={IMAGE}", "--wait", "--poll", "0"]
    assert main(argv) == code
    ((_, _, namespace, _, body),) = api.created
    assert namespace == body["metadata"]["namespace"] == "from-kubeconfig"
    out, err = capsys.readouterr()
    assert f"created RayJob from-kubeconfig/{body['metadata']['name']}" in out
    if code:
        assert "did not succeed" in err and f"logs job/{body['metadata']['name']}" in err


def test_inside_a_pod_the_namespace_comes_from_the_service_account(monkeypatch, tmp_path):
    (tmp_path / "namespace").write_text("jointssl\n")
    monkeypatch.setattr(rayjob, "NAMESPACE_FILE", tmp_path / "namespace")
    assert rayjob.namespace_in_cluster() == "jointssl"
    monkeypatch.setattr(rayjob, "NAMESPACE_FILE", tmp_path / "absent")
    assert rayjob.namespace_in_cluster() is None


def test_the_command_module_imports_only_the_standard_library():
    source = (REPO / "jointssl/commands/schedule.py").read_text()
    top_level = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert all(line.split()[1].split(".")[0] in sys.stdlib_module_names for line in top_level), top_level
