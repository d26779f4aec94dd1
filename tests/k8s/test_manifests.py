"""k8s/ and infra/k8s render, and every object is valid: core kinds against the Kubernetes schemas
(kubernetes-validate, strict: unknown fields fail), KubeRay kinds against the v1.7.0 CRDs (made strict too).
Then what the overlays must agree on: images, namespaces, and the names objects refer to each other by."""

from __future__ import annotations

import re

import jsonschema
import kubernetes_validate
import pytest
import tomllib

from tests.k8s.conftest import (
    INFER_TEMPLATE,
    KUSTOMIZATIONS,
    NAMESPACE,
    PLAIN_MANIFESTS,
    PLATFORM_OVERLAYS,
    REPO,
    containers,
    crd_schemas,
    find,
    load_manifest,
    platform_and_runs,
    render,
)

KUBERNETES_VERSIONS = ("1.32", "1.37")
"""The oldest Kubernetes the manifests are meant for (CronJob timeZone, PodSecurity labels, sidecar-free
RayJob submitters all predate it) and the newest schema kubernetes-validate has."""

EXPECTED_KINDS = {
    "k8s/overlays/dev": {"RayCluster": 1, "CronJob": 1, "Deployment": 1, "Service": 1, "NetworkPolicy": 4,
                         "ServiceAccount": 3, "Role": 1, "RoleBinding": 1, "ConfigMap": 3},
    "k8s/overlays/gpu-prod": {"RayCluster": 1, "CronJob": 1, "Deployment": 1, "Service": 1, "Ingress": 1,
                              "NetworkPolicy": 4, "ServiceAccount": 3, "Role": 1, "RoleBinding": 1, "ConfigMap": 3},
    "k8s/overlays/gpu-prod-raycronjob": {"RayCluster": 1, "RayCronJob": 1, "Deployment": 1, "Service": 1,
                                         "Ingress": 1, "NetworkPolicy": 3, "ServiceAccount": 2, "ConfigMap": 2},
    "k8s/overlays/dev/pretrain": {"RayJob": 1},
    "k8s/overlays/gpu-prod/pretrain": {"RayJob": 1},
    "infra/k8s/mlflow-db": {"StatefulSet": 1, "Service": 1, "NetworkPolicy": 1, "ConfigMap": 1},
    "infra/k8s/object-store": {"Deployment": 1, "Service": 1, "NetworkPolicy": 1, "PersistentVolumeClaim": 1},
}


def _is_custom(obj: dict) -> bool:
    return obj["apiVersion"].startswith("ray.io/")


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_kustomization_renders_the_expected_objects(path):
    objects = render(path)
    kinds: dict[str, int] = {}
    for obj in objects:
        kinds[obj["kind"]] = kinds.get(obj["kind"], 0) + 1
    assert kinds == EXPECTED_KINDS[path]


@pytest.mark.parametrize("path", KUSTOMIZATIONS + PLAIN_MANIFESTS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_objects_validate_strictly(path, version):
    objects = load_manifest(path) if path in PLAIN_MANIFESTS else render(path)
    core = [o for o in objects if not _is_custom(o)]
    assert core or path.endswith("/pretrain")
    for obj in core:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            where = ".".join(map(str, err.path))
            pytest.fail(f"{path}: {obj['kind']}/{obj['metadata']['name']} at {where}: {err.message}")


def test_strict_core_validation_rejects_an_unknown_field():
    deployment = find(render("k8s/overlays/dev"), "Deployment", "mlflow")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def _crd_errors(obj: dict) -> list[str]:
    schema = crd_schemas().get((obj["apiVersion"], obj["kind"]))
    assert schema is not None, f"no KubeRay CRD for {obj['apiVersion']} {obj['kind']}"
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(obj)]


@pytest.mark.parametrize("path", [p for p in KUSTOMIZATIONS if p.startswith("k8s/")])
def test_custom_resources_validate_against_the_kuberay_crds(path):
    custom = [o for o in render(path) if _is_custom(o)]
    assert custom
    for obj in custom:
        assert _crd_errors(obj) == [], f"{path}: {obj['kind']}/{obj['metadata']['name']}"


def test_the_scheduler_template_validates_against_the_rayjob_crd():
    (template,) = load_manifest(INFER_TEMPLATE)
    assert _crd_errors(template) == []


def test_crd_validation_rejects_an_unknown_field():
    (template,) = load_manifest(INFER_TEMPLATE)
    template["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "x"
    template["spec"]["shutdownAfterJobFinish"] = True
    errors = _crd_errors(template)
    assert any("imagePullPolice" in e for e in errors) and any("shutdownAfterJobFinish" in e for e in errors)


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_everything_lives_in_the_jointssl_namespace(path):
    for obj in render(path):
        assert obj["metadata"].get("namespace") == NAMESPACE, f"{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize("overlay", PLATFORM_OVERLAYS)
def test_images_are_real_references_of_this_version(overlay):
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    objects = platform_and_runs()[overlay]
    images = {c["image"] for o in objects for _, c in containers(o)}
    assert images, overlay
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name.endswith("jointssl") and re.fullmatch(rf"{re.escape(version)}-(cpu|gpu)", tag), image


@pytest.mark.parametrize("overlay", ("dev", "gpu-prod"))
def test_the_scheduler_hands_its_own_image_to_the_rayjobs_it_creates(overlay):
    cronjob = find(render(f"k8s/overlays/{overlay}"), "CronJob", "infer-nightly")
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["JOINTSSL_IMAGE"] == container["image"]
    assert "--image=jointssl=$(JOINTSSL_IMAGE)" in container["args"]


@pytest.mark.parametrize("overlay", PLATFORM_OVERLAYS)
def test_gpus_are_requested_by_gpu_builds_only_and_not_at_all_in_dev(overlay):
    for obj in platform_and_runs()[overlay]:
        for path, container in containers(obj):
            wants_gpu = "nvidia.com/gpu" in container["resources"].get("limits", {})
            expected = False if overlay == "dev" else container["image"].endswith("-gpu")
            assert wants_gpu == expected, f"{overlay}: {obj['kind']} {path}"


@pytest.mark.parametrize("overlay", PLATFORM_OVERLAYS)
def test_config_maps_referenced_by_pods_are_deployed(overlay):
    objects = platform_and_runs()[overlay]
    deployed = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
    for obj in objects:
        for path, container in containers(obj):
            for source in container.get("envFrom") or []:
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in deployed, f"{obj['kind']} {path}"
    env = find(objects, "ConfigMap", "jointssl-env")["data"]
    assert env["MLFLOW_TRACKING_URI"] == f"http://mlflow.{NAMESPACE}.svc:5000"
    assert find(objects, "Service", "mlflow")["spec"]["ports"][0]["port"] == 5000
