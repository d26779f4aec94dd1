"""Security properties of everything deployed: no literal secrets, non-root containers with limits, RBAC
that grants nothing beyond creating and reading RayJobs, and a NetworkPolicy over every pod."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.conftest import (
    INFER_TEMPLATE,
    PLATFORM_OVERLAYS,
    REPO,
    containers,
    load_manifest,
    platform_and_runs,
    pod_specs,
    pod_templates,
    render,
)

INFRA = ("infra/k8s/mlflow-db", "infra/k8s/object-store")
SECRETISH = re.compile(r"pass(word|wd)?|secret|token|credential|private[-_]?key|access[-_]?key", re.IGNORECASE)
REFERENCE_KEYS = {"secretName", "secretKeyRef", "secretRef"}
"""Keys whose values name a Secret rather than hold one."""
LITERAL_CREDENTIALS = (
    re.compile(r"://[^\s/:@$'\"]+:[^\s/@$'\"]+@"),  # user:password@ inside a URL
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # an AWS access key id
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
)


def deployments() -> dict[str, list[dict[str, Any]]]:
    """Each overlay's objects, its infrastructure (infra/k8s) and the scheduler's RayJob template."""
    extra = [o for path in INFRA for o in render(path)] + load_manifest(INFER_TEMPLATE)
    return {overlay: objects + extra for overlay, objects in platform_and_runs().items()}


def _walk(obj: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield path, key, value
            yield from _walk(value, f"{path}.{key}" if path else key)
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from _walk(item, f"{path}[{i}]")


@pytest.mark.parametrize("overlay", PLATFORM_OVERLAYS)
def test_no_secret_values_in_manifests_only_references(overlay):
    for obj in deployments()[overlay]:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        assert obj["kind"] != "Secret", f"{name}: Secrets are created out of band (infra/k8s/secrets.sh)"
        for path, key, value in _walk(obj):
            if isinstance(value, str) and SECRETISH.search(key) and key not in REFERENCE_KEYS:
                pytest.fail(f"{name} {path}.{key} holds a value; reference a Secret instead")
            if key == "env":
                for var in value:
                    if SECRETISH.search(var["name"]):
                        assert "secretKeyRef" in var.get("valueFrom", {}), f"{name} {path}: env {var['name']}"
        if obj["kind"] == "ConfigMap":
            for key in obj.get("data", {}):
                assert not SECRETISH.search(key), f"{name}: {key} belongs in a Secret"


def test_no_literal_credentials_in_any_deployment_file():
    files = [p for d in ("k8s", "infra", "configs") for p in (REPO / d).rglob("*") if p.is_file()]
    files += [REPO / "Dockerfile"]
    assert len(files) > 20
    for path in files:
        text = path.read_text()
        for pattern in LITERAL_CREDENTIALS:
            match = pattern.search(text)
            assert match is None, f"{path.relative_to(REPO)}: {match.group(0) if match else ''}"


def test_the_secret_scanners_catch_what_they_look_for():
    assert SECRETISH.search("MLFLOW_TRACKING_PASSWORD") and SECRETISH.search("AWS_SECRET_ACCESS_KEY")
    assert not SECRETISH.search("MLFLOW_TRACKING_URI")
    assert LITERAL_CREDENTIALS[0].search("postgresql://mlflow:hunter2@db:5432/mlflow")
    assert not LITERAL_CREDENTIALS[0].search("postgresql://$DB_USER:$db_password@$DB_HOST:5432/mlflow")


@pytest.mark.parametrize("overlay", PLATFORM_OVERLAYS)
def test_every_container_runs_as_non_root_with_limits(overlay):
    checked = 0
    for obj in deployments()[overlay]:
        for path, spec in pod_specs(obj):
            where = f"{obj['kind']}/{obj['metadata']['name']} {path}"
            pod = spec.get("securityContext", {})
            assert pod.get("runAsNonRoot") is True and pod.get("runAsUser", 1) != 0, where
            assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), where
        for path, container in containers(obj):
            where = f"{obj['kind']}/{obj['metadata']['name']} {path}"
            _check_container(where, container)
            checked += 1
        autoscaler = obj.get("spec", {}).get("autoscalerOptions")
        if autoscaler:
            _check_container(f"{obj['kind']} autoscaler", autoscaler)
    assert checked >= 8


def _check_container(where: str, container: dict[str, Any]) -> None:
    context = container.get("securityContext", {})
    assert context.get("runAsNonRoot") is True, f"{where}: runAsNonRoot"
    assert context.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation"
    assert context.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: capabilities"
    assert not context.get("privileged"), f"{where}: privileged"
    assert context.get("runAsUser", 1) != 0, f"{where}: runAsUser 0"
    limits = container.get("resources", {}).get("limits", {})
    requests = container.get("resources", {}).get("requests", {})
    assert {"cpu", "memory"} <= set(limits) and {"cpu", "memory"} <= set(requests), f"{where}: resources"


@pytest.mark.parametrize("overlay", PLATFORM_OVERLAYS)
def test_rbac_grants_nothing_beyond_creating_and_reading_rayjobs(overlay):
    objects = deployments()[overlay]
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Role"}
    for role in roles.values():
        for rule in role["rules"]:
            assert rule["apiGroups"] == ["ray.io"] and rule["resources"] == ["rayjobs"], role["metadata"]["name"]
            assert set(rule["verbs"]) <= {"create", "get", "list", "watch"}, rule["verbs"]
    bound_accounts = set()
    for binding in (o for o in objects if o["kind"] == "RoleBinding"):
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": binding["roleRef"]["name"]}
        assert binding["roleRef"]["name"] in roles
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount" and subject["namespace"] == binding["metadata"]["namespace"]
            bound_accounts.add(subject["name"])
    assert bound_accounts == ({"jointssl-scheduler"} if roles else set())


@pytest.mark.parametrize("overlay", PLATFORM_OVERLAYS)
def test_only_pods_that_talk_to_the_api_server_get_a_token(overlay):
    objects = deployments()[overlay]
    no_token_accounts = {o["metadata"]["name"] for o in objects
                         if o["kind"] == "ServiceAccount" and o.get("automountServiceAccountToken") is False}
    with_token = set()
    for obj in objects:
        for path, spec in pod_specs(obj):
            account = spec.get("serviceAccountName")
            if spec.get("automountServiceAccountToken") is False or account in no_token_accounts:
                continue
            with_token.add((obj["kind"], path.split(".")[1] if "." in path else path, account))
    allowed = {("CronJob", "jobTemplate", "jointssl-scheduler"),  # creates RayJobs
               ("RayCluster", "headGroupSpec", None)}  # KubeRay's autoscaler sidecar scales the cluster
    assert with_token <= allowed, with_token - allowed


@pytest.mark.parametrize("overlay", PLATFORM_OVERLAYS)
def test_every_pod_is_selected_by_a_network_policy(overlay):
    objects = deployments()[overlay]
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    components = set()
    for obj in objects:
        if obj["kind"] == "ConfigMap":
            continue
        for path, template in pod_templates(obj):
            labels = template.get("metadata", {}).get("labels", {})
            components.add(labels.get("app.kubernetes.io/component"))
            selected = [p for p in policies
                        if p["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()]
            assert selected, f"{overlay}: {obj['kind']}/{obj['metadata']['name']} {path} ({labels})"
    covered = {p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in policies}
    assert None not in components and components <= covered


def test_the_scheduler_and_database_policies_restrict_egress_too():
    objects = list(render("k8s/overlays/gpu-prod")) + list(render("infra/k8s/mlflow-db"))
    for name in ("scheduler", "mlflow", "mlflow-db"):
        (policy,) = [o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == name]
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"], name


def test_the_namespace_enforces_baseline_and_audits_restricted_pod_security():
    (namespace,) = load_manifest(Path("infra/k8s/namespace.yaml"))
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/audit"] == labels["pod-security.kubernetes.io/warn"] == "restricted"
