"""What the cluster runs is the real CLI with real configs: the RayJob entrypoints name job scripts and config
files of this repository that load, the CronJob's command parses with jointssl's own parser and reads the
template where the ConfigMap is mounted, sizes agree with configs, and deadlines nest."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from jointssl.cli import build_parser
from jointssl.config import load_job_config
from tests.k8s.conftest import INFER_TEMPLATE, PRETRAIN_OVERLAYS, REPO, find, load_manifest, render


def entrypoint(job_spec: dict[str, Any]) -> tuple[str, str, list[str], list[str]]:
    """``python <script> --config <file> [flags] [--section.key value ...]`` -> (script, config, flags, overrides)."""
    argv = shlex.split(job_spec["entrypoint"])
    assert argv[:1] == ["python"] and argv[2] == "--config", argv
    script, config, rest = argv[1], argv[3], argv[4:]
    overrides = [a for i, a in enumerate(rest) if "." in a or (i and "." in rest[i - 1])]
    flags = [a for a in rest if a not in overrides]
    return script, config, flags, overrides


def pretrain_job(overlay: str) -> dict[str, Any]:
    return find(render(f"k8s/overlays/{PRETRAIN_OVERLAYS[overlay]}"), "RayJob", "pretrain")


@pytest.mark.parametrize("overlay", PRETRAIN_OVERLAYS)
def test_pretraining_runs_jobs_pretrain_with_a_cluster_config_that_loads(overlay):
    script, config_file, flags, overrides = entrypoint(pretrain_job(overlay)["spec"])
    assert script == "jobs/pretrain.py" and (REPO / script).is_file() and flags == []
    assert config_file == "configs/k8s-pretrain.yaml"
    config = load_job_config(REPO / config_file, overrides)
    assert config.storage.root.startswith("s3://"), "checkpoints must outlive the pods"
    assert config.tracking.uri is None, "MLflow comes from MLFLOW_TRACKING_URI (jointssl-env)"


@pytest.mark.parametrize("overlay", PRETRAIN_OVERLAYS)
def test_pretraining_ranks_match_the_rayjobs_workers(overlay):
    spec = pretrain_job(overlay)["spec"]
    _, config_file, _, overrides = entrypoint(spec)
    config = load_job_config(REPO / config_file, overrides).pretrain
    groups = spec["rayClusterSpec"]["workerGroupSpecs"]
    assert all(g["minReplicas"] == g["maxReplicas"] == g["replicas"] for g in groups), "a fixed-size DDP group"
    if config.use_gpu:
        gpus = sum(g["replicas"] * int(c["resources"]["limits"].get("nvidia.com/gpu", 0))
                   for g in groups for c in g["template"]["spec"]["containers"])
        assert gpus == config.num_workers
    else:
        cpus = sum(g["replicas"] * float(c["resources"]["limits"]["cpu"])
                   for g in groups for c in g["template"]["spec"]["containers"])
        assert config.num_workers * config.cpus_per_worker < cpus, "leave CPUs for Ray Data's chip reads"


def test_gpu_pretraining_uses_four_gpus_on_the_gpu_pool():
    spec = pretrain_job("gpu-prod")["spec"]
    (group,) = spec["rayClusterSpec"]["workerGroupSpecs"]
    pod = group["template"]["spec"]
    assert group["replicas"] == 4 and pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"jointssl.io/node-pool": "gpu"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


@pytest.mark.parametrize("overlay", PRETRAIN_OVERLAYS)
def test_a_lost_cluster_resubmits_the_same_run_so_it_resumes(overlay):
    spec = pretrain_job(overlay)["spec"]
    _, config_file, _, overrides = entrypoint(spec)
    config = load_job_config(REPO / config_file, overrides)
    assert spec["backoffLimit"] >= 1 and spec["submitterConfig"]["backoffLimit"] >= 1
    assert config.pretrain.max_failures >= 1, "a lost worker pod restarts from the last checkpoint in place"
    assert "--run.name" not in overrides, "every retry must reuse run.name to find its checkpoints"
    assert spec["shutdownAfterJobFinishes"] is True and spec["activeDeadlineSeconds"] > 0


def infer_spec() -> dict[str, Any]:
    (template,) = load_manifest(INFER_TEMPLATE)
    return template["spec"]


def test_inference_runs_jobs_infer_incrementally_with_a_config_that_loads():
    script, config_file, flags, overrides = entrypoint(infer_spec())
    assert script == "jobs/infer.py" and flags == ["--incremental"] and overrides == []
    assert config_file == "configs/k8s-infer.yaml"
    config = load_job_config(REPO / config_file)
    assert config.storage.root.startswith("s3://") and config.tracking.uri is None
    assert config.run.name == "nightly", "one run name for every night keeps the incremental watermark"
    assert config.storage.root == load_job_config(REPO / "configs/k8s-pretrain.yaml").storage.root


def test_the_inference_arguments_parse_with_the_cli():
    infer = build_parser()._subparsers._group_actions[0].choices["infer"]  # argparse keeps its subparsers private
    if "--incremental" not in infer._option_string_actions:
        pytest.skip("'jointssl infer' has no --incremental flag yet (issue #7 is adding it)")
    script, config_file, flags, _ = entrypoint(infer_spec())
    assert (REPO / script).is_file()
    args = build_parser().parse_args(["infer", "--config", config_file, *flags])
    assert args.config == config_file and args.incremental is True


def scheduler_container(overlay: str) -> tuple[dict[str, Any], dict[str, Any]]:
    cronjob = find(render(f"k8s/overlays/{overlay}"), "CronJob", "infer-nightly")
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return cronjob, container


@pytest.mark.parametrize("overlay", ("dev", "gpu-prod"))
def test_the_cronjob_runs_jointssl_schedule_on_the_mounted_template(overlay):
    cronjob, container = scheduler_container(overlay)
    assert container["command"] == ["jointssl", "schedule"]
    args = build_parser().parse_args(["schedule", *container["args"]])
    assert args.wait and args.image == [("jointssl", "$(JOINTSSL_IMAGE)")]
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (mount,) = [m for m in container["volumeMounts"] if str(args.template).startswith(m["mountPath"] + "/")]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    config_map = find(render(f"k8s/overlays/{overlay}"), "ConfigMap", volume["configMap"]["name"])
    assert args.template.name in config_map["data"]
    assert config_map["data"][args.template.name] == INFER_TEMPLATE.read_text()


@pytest.mark.parametrize(("overlay", "workers"), [("dev", 1), ("gpu-prod", 8)])
def test_each_overlay_sizes_the_inference_workers(overlay, workers):
    _, container = scheduler_container(overlay)
    args = build_parser().parse_args(["schedule", *container["args"]])
    assert args.replicas == [("cpu", workers)]


def test_deadlines_nest_so_the_rayjobs_own_fires_first():
    cronjob, container = scheduler_container("gpu-prod")
    args = build_parser().parse_args(["schedule", *container["args"]])
    job = cronjob["spec"]["jobTemplate"]["spec"]
    assert infer_spec()["activeDeadlineSeconds"] < args.timeout < job["activeDeadlineSeconds"]
    assert job["activeDeadlineSeconds"] < 24 * 3600, "a stuck run must end before the next night's"


def test_the_cronjob_never_overlaps_and_keeps_some_history():
    cronjob, _ = scheduler_container("gpu-prod")
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0 and spec["timeZone"] == "Etc/UTC"
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_the_raycronjob_runs_the_schedulers_template():
    objects = render("k8s/overlays/gpu-prod-raycronjob")
    raycronjob = find(objects, "RayCronJob", "infer-nightly")
    _, container = scheduler_container("gpu-prod")
    args = build_parser().parse_args(["schedule", *container["args"]])
    expected = infer_spec()
    (image,) = {c["image"] for c in _containers(raycronjob["spec"]["jobTemplate"])}
    _set(expected, "image", image)
    for key in ("replicas", "minReplicas", "maxReplicas"):
        expected["rayClusterSpec"]["workerGroupSpecs"][0][key] = dict(args.replicas)["cpu"]
    assert raycronjob["spec"]["jobTemplate"] == expected
    assert raycronjob["spec"]["schedule"] == scheduler_container("gpu-prod")[0]["spec"]["schedule"]
    assert not [o for o in objects if o["kind"] in ("CronJob", "RayJob", "Role")]


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = spec["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"]),
            spec["submitterPodTemplate"]]
    return [c for p in pods for c in p["spec"]["containers"]]


def _set(spec: dict[str, Any], key: str, value: str) -> None:
    for container in _containers(spec):
        container[key] = value


def test_the_raycronjob_cannot_forbid_overlaps_so_the_area_lease_does():
    """KubeRay's RayCronJob has no concurrencyPolicy (the real CRD rejects one): a slow night and the
    next tick may both start; jointssl.infer.lease lets only one of them write (tests/infer/test_lease.py)."""
    from tests.k8s.conftest import crd_schemas

    spec = crd_schemas()[("ray.io/v1", "RayCronJob")]["properties"]["spec"]["properties"]
    assert "concurrencyPolicy" not in spec and "schedule" in spec
    component = (REPO / "k8s/components/raycronjob/kustomization.yaml").read_text()
    assert "jointssl.infer.lease" in component
    raycronjob = find(render("k8s/overlays/gpu-prod-raycronjob"), "RayCronJob", "infer-nightly")
    assert "incremental" in raycronjob["spec"]["jobTemplate"]["entrypoint"]
