"""What the Kubernetes tests share: rendered kustomizations, the pod specs inside any object, the KubeRay CRDs.

Nothing here talks to a cluster: overlays are rendered with ``kubectl kustomize`` (offline), core objects
are checked against the Kubernetes OpenAPI schemas of kubernetes-validate, custom resources against the
KubeRay v1.7.0 CRDs. Tests that need kubectl skip when it is not on PATH; tests that need the CRDs skip,
naming the path, when ../shared/kuberay/crds is absent (CI has it, a user's clone does not).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO.parent / "shared" / "kuberay" / "crds"

PLATFORM_OVERLAYS = ("dev", "gpu-prod", "gpu-prod-raycronjob")
"""What 'kubectl apply -k k8s/overlays/<name>' deploys."""
PRETRAIN_OVERLAYS = {"dev": "dev/pretrain", "gpu-prod": "gpu-prod/pretrain"}
"""The pre-training run of each overlay, applied on its own."""
KUSTOMIZATIONS = (
    *(f"k8s/overlays/{o}" for o in (*PLATFORM_OVERLAYS, *PRETRAIN_OVERLAYS.values())),
    "infra/k8s/mlflow-db",
    "infra/k8s/object-store",
)
PLAIN_MANIFESTS = ("infra/k8s/namespace.yaml",)
INFER_TEMPLATE = REPO / "k8s/base/inference/template/rayjob-infer.yaml"
NAMESPACE = "jointssl"


def require_kubectl() -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not on PATH (the overlays are rendered with 'kubectl kustomize')")


@functools.cache
def _render(path: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(["kubectl", "kustomize", str(REPO / path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed:\n{result.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(path: str) -> tuple[dict[str, Any], ...]:
    """The objects ``kubectl kustomize <path>`` produces (cached: each kustomization renders once per run)."""
    require_kubectl()
    return _render(path)


def load_manifest(path: str | Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((REPO / path).read_text()) if doc]


def find(objects: tuple[dict[str, Any], ...] | list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of that kind and name; generated ConfigMaps match without their hash suffix."""
    pattern = re.compile(rf"{re.escape(name)}(-[a-z0-9]{{10}})?")
    matches = [o for o in objects if o["kind"] == kind and pattern.fullmatch(o["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def pod_specs(obj: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, pod spec) for every pod spec anywhere in an object: Deployments, CronJobs, and the nested
    templates of RayClusters, RayJobs (head, worker groups, submitter) and RayCronJobs alike."""
    if isinstance(obj, dict):
        if isinstance(obj.get("containers"), list):
            yield path, obj
        for key, value in obj.items():
            if key != "data":  # ConfigMap payloads are text, not objects
                yield from pod_specs(value, f"{path}.{key}" if path else key)
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from pod_specs(item, f"{path}[{i}]")


def pod_templates(obj: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, pod template) for every ``{metadata, spec: {containers}}`` in an object: what becomes a pod."""
    if isinstance(obj, dict):
        spec = obj.get("spec")
        if isinstance(spec, dict) and isinstance(spec.get("containers"), list):
            yield path, obj
        for key, value in obj.items():
            if key != "data":
                yield from pod_templates(value, f"{path}.{key}" if path else key)
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from pod_templates(item, f"{path}[{i}]")


def containers(obj: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, container) for every container and init container of every pod spec in an object."""
    for path, spec in pod_specs(obj):
        for field in ("initContainers", "containers"):
            for i, container in enumerate(spec.get(field) or []):
                yield f"{path}.{field}[{i}]", container


def platform_and_runs() -> dict[str, list[dict[str, Any]]]:
    """Every object a deployment consists of, per overlay: the platform, its pre-training run, and the RayJob
    the scheduler creates from the template (the template file itself, as an object)."""
    everything = {}
    for overlay in PLATFORM_OVERLAYS:
        objects = list(render(f"k8s/overlays/{overlay}"))
        pretrain = PRETRAIN_OVERLAYS.get(overlay.removesuffix("-raycronjob"))
        if pretrain:
            objects += render(f"k8s/overlays/{pretrain}")
        everything[overlay] = objects
    return everything


CUSTOM_KINDS = ("rayclusters", "rayjobs", "raycronjobs")
"""The KubeRay kinds this project uses (RayService is not)."""


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of the served KubeRay CRD versions, made strict (see ``strict``)."""
    if not CRD_DIR.is_dir():
        pytest.skip(f"KubeRay v1.7.0 CRDs not found at {CRD_DIR} (CI provides ../shared/kuberay/crds)")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the three CRDs are 56,000 lines
    schemas = {}
    for plural in CUSTOM_KINDS:
        crd = yaml.load((CRD_DIR / f"ray.io_{plural}.yaml").read_text(), Loader=loader)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schemas[(f"{group}/{version['name']}", kind)] = strict(version["schema"]["openAPIV3Schema"])
    return schemas


def strict(schema: Any) -> Any:
    """An openAPIV3Schema that rejects unknown fields, as the API server's strict field validation does
    (kubectl's default), instead of silently pruning them: every object with declared properties gets
    ``additionalProperties: false`` unless it preserves unknown fields."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out
