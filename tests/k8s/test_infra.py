"""infra/k8s: what a cluster needs before 'kubectl apply -k'. The pins agree with each other, the scripts
parse, secrets.sh creates every Secret and key the manifests reference (run against a stand-in kubectl that
keeps Secrets in a folder) without printing a value, and bucket names agree across configs, MLflow,
the bucket script and the IAM policies."""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from jointssl.config import load_job_config
from tests.k8s.conftest import PLATFORM_OVERLAYS, REPO, find, platform_and_runs, render

INFRA = REPO / "infra/k8s"
SCRIPTS = sorted(INFRA.rglob("*.sh"))
LOCK = (REPO / "requirements/lock-py311-linux.txt").read_text()
TLS_SECRETS = {"mlflow-tls"}
"""Certificates come from cert-manager or a CA, not from secrets.sh."""

FAKE_KUBECTL = """#!{python}
# Stand-in for the kubectl calls of infra/k8s/secrets.sh: Secrets are folders of files under $FAKE_STORE.
import base64, os, shutil, sys
from pathlib import Path
store = Path(os.environ["FAKE_STORE"])
args = sys.argv[1:]
assert args[:2] == ["--namespace", "jointssl"], args
verb, kind, *rest = args[2:]
if verb == "get" and kind == "secret":
    path = store / rest[0]
    if not path.is_dir():
        sys.exit(1)
    if "-o" in rest:
        key = rest[rest.index("-o") + 1].removeprefix("jsonpath={{.data.").removesuffix("}}").replace("\\\\.", ".")
        sys.stdout.write(base64.b64encode((path / key).read_bytes()).decode())
elif verb == "create" and kind == "secret" and rest[0] == "generic":
    source = rest[2].removeprefix("--from-file=")
    shutil.copytree(source, store / rest[1])
else:
    sys.exit("unexpected kubectl call: " + " ".join(args))
"""


def referenced_secrets() -> dict[str, set[str]]:
    """Secret name -> keys the manifests read (envFrom reads whatever is there: the keys the apps need)."""
    needed: dict[str, set[str]] = {"jointssl-s3": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
                                   "mlflow-s3": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
                                   "object-store-admin": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
                                   "mlflow-client": {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}}
    objects = [o for objs in platform_and_runs().values() for o in objs]
    objects += list(render("infra/k8s/mlflow-db")) + list(render("infra/k8s/object-store"))
    found: dict[str, set[str]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "secretKeyRef" in node:
                found.setdefault(node["secretKeyRef"]["name"], set()).add(node["secretKeyRef"]["key"])
            if "secretRef" in node:
                name = node["secretRef"]["name"]
                found.setdefault(name, set()).update(needed[name])
            if "secretName" in node:
                keys = {item["key"] for item in node.get("items", [])}
                found.setdefault(node["secretName"], set()).update(keys)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(objects)
    return found


def run_secrets(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    bin_dir, store = tmp_path / "bin", tmp_path / "store"
    bin_dir.mkdir(exist_ok=True)
    store.mkdir(exist_ok=True)
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL.format(python=sys.executable))
    kubectl.chmod(0o755)
    environment = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_STORE": str(store), **(env or {})}
    return subprocess.run(["bash", str(INFRA / "secrets.sh"), *args], capture_output=True, text=True,
                          env=environment)


def stored(tmp_path: Path) -> dict[str, dict[str, str]]:
    return {s.name: {k.name: k.read_text() for k in s.iterdir()} for s in sorted((tmp_path / "store").iterdir())}


@pytest.fixture(scope="module")
def dev_secrets(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict[str, dict[str, str]]]:
    """One 'secrets.sh dev' run: its output and the Secrets it created."""
    tmp_path = tmp_path_factory.mktemp("secrets")
    result = run_secrets(tmp_path, "dev")
    assert result.returncode == 0, result.stderr
    return result, stored(tmp_path)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_scripts_parse_and_are_executable(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert os.access(script, os.X_OK)
    assert "set -euo pipefail" in script.read_text() or "set -uo pipefail" in script.read_text()


def test_secrets_sh_dev_creates_every_referenced_secret_and_prints_no_value(dev_secrets):
    result, secrets = dev_secrets
    for name, keys in referenced_secrets().items():
        if name not in TLS_SECRETS:
            assert name in secrets and keys <= set(secrets[name]), (name, keys)
    for values in secrets.values():
        for key, value in values.items():
            if key != "MLFLOW_TRACKING_USERNAME":
                assert value not in result.stdout + result.stderr, key
    assert secrets["jointssl-s3"] == secrets["mlflow-s3"] == secrets["object-store-admin"]


def test_the_database_password_is_the_same_in_every_uri(dev_secrets):
    _, secrets = dev_secrets
    password = secrets["mlflow-db"]["password"]
    assert re.fullmatch(r"[0-9a-f]{48}", password), "URL-safe inside database URIs"
    assert secrets["mlflow-db"]["backend-store-uri"] == (
        f"postgresql+psycopg://mlflow:{password}@mlflow-db.jointssl.svc:5432/mlflow")
    ini = configparser.ConfigParser()
    ini.read_string(secrets["mlflow-auth"]["basic_auth.ini"])
    assert ini["mlflow"]["database_uri"].endswith(f"mlflow:{password}@mlflow-db.jointssl.svc:5432/mlflow_auth")
    assert "admin_password" not in ini["mlflow"], "the admin password comes from MLFLOW_AUTH_ADMIN_PASSWORD"


def test_secrets_sh_keeps_existing_secrets(tmp_path):
    assert run_secrets(tmp_path, "dev").returncode == 0
    first = stored(tmp_path)
    again = run_secrets(tmp_path, "dev")
    assert again.returncode == 0 and "exists, kept" in again.stdout and stored(tmp_path) == first


def test_secrets_sh_prod_needs_one_s3_identity_per_workload(tmp_path):
    assert run_secrets(tmp_path, "prod").returncode != 0
    keys = {"JOBS_AWS_ACCESS_KEY_ID": "jobs-id", "JOBS_AWS_SECRET_ACCESS_KEY": "jobs-key",
            "MLFLOW_AWS_ACCESS_KEY_ID": "mlflow-id", "MLFLOW_AWS_SECRET_ACCESS_KEY": "mlflow-key",
            "MLFLOW_DB_HOST": "db.example.internal"}
    result = run_secrets(tmp_path, "prod", env=keys)
    assert result.returncode == 0, result.stderr
    secrets = stored(tmp_path)
    assert secrets["jointssl-s3"] == {"AWS_ACCESS_KEY_ID": "jobs-id", "AWS_SECRET_ACCESS_KEY": "jobs-key"}
    assert secrets["mlflow-s3"] == {"AWS_ACCESS_KEY_ID": "mlflow-id", "AWS_SECRET_ACCESS_KEY": "mlflow-key"}
    assert "@db.example.internal:5432/" in secrets["mlflow-db"]["backend-store-uri"]
    assert "object-store-admin" not in secrets


def test_preflight_checks_the_secrets_the_manifests_reference():
    checked = {}
    for line in (INFRA / "preflight.sh").read_text().splitlines():
        match = re.match(r"\s*require_secret (\S+) (.+)$", line)
        if match:
            checked[match.group(1)] = set(match.group(2).split())
    referenced = referenced_secrets()
    assert set(checked) == set(referenced)
    for name, keys in referenced.items():
        assert keys <= checked[name], name


def test_kuberay_is_pinned_to_1_7_0_everywhere():
    assert re.search(r"^CHART_VERSION=1\.7\.0$", (INFRA / "kuberay/install.sh").read_text(), re.MULTILINE)
    values = yaml.safe_load((INFRA / "kuberay/values.yaml").read_text())
    assert values["image"]["tag"] == "v1.7.0" and values["watchNamespace"] == ["jointssl"]
    assert "':v1.7.0$'" in (INFRA / "preflight.sh").read_text()
    gates = yaml.safe_load((INFRA / "kuberay/values-raycronjob.yaml").read_text())["featureGates"]
    assert {"name": "RayCronJob", "enabled": True} in gates


@pytest.mark.parametrize("overlay", PLATFORM_OVERLAYS)
def test_ray_clusters_run_the_locked_ray_version(overlay):
    (locked,) = re.findall(r"^ray==(\S+)$", LOCK, re.MULTILINE)
    versions = {o["spec"].get("rayVersion") or o["spec"]["rayClusterSpec"]["rayVersion"]
                for o in platform_and_runs()[overlay] if o["kind"] in ("RayCluster", "RayJob")}
    assert versions == {locked}


def test_bucket_names_agree_across_configs_mlflow_script_and_policies():
    script = (INFRA / "storage/buckets.sh").read_text()
    jobs_bucket = re.search(r'JOBS_BUCKET="\$\{JOBS_BUCKET:-([^}]+)\}"', script).group(1)
    mlflow_bucket = re.search(r'MLFLOW_BUCKET="\$\{MLFLOW_BUCKET:-([^}]+)\}"', script).group(1)
    for config in ("configs/k8s-pretrain.yaml", "configs/k8s-infer.yaml"):
        assert load_job_config(REPO / config).storage.root.startswith(f"s3://{jobs_bucket}/"), config
    for overlay in PLATFORM_OVERLAYS:
        settings = find(render(f"k8s/overlays/{overlay}"), "ConfigMap", "mlflow-settings")["data"]
        assert settings["MLFLOW_ARTIFACTS_DESTINATION"].startswith(f"s3://{mlflow_bucket}/")
    for policy, bucket in (("policy-jobs.json", jobs_bucket), ("policy-mlflow.json", mlflow_bucket)):
        statements = json.loads((INFRA / "storage" / policy).read_text())["Statement"]
        resources = {s["Resource"] for s in statements}
        assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}, policy


def test_the_object_store_is_where_the_dev_overlay_points():
    env = find(render("k8s/overlays/dev"), "ConfigMap", "jointssl-env")["data"]
    service = find(render("infra/k8s/object-store"), "Service", "seaweedfs")
    port = service["spec"]["ports"][0]["port"]
    assert env["AWS_ENDPOINT_URL"] == f"http://{service['metadata']['name']}.jointssl.svc:{port}"
    prod = find(render("k8s/overlays/gpu-prod"), "ConfigMap", "jointssl-env")["data"]
    assert "AWS_ENDPOINT_URL" not in prod, "gpu-prod uses AWS S3 unless an endpoint is added"


def test_the_database_is_where_the_secrets_point(dev_secrets):
    uri = dev_secrets[1]["mlflow-db"]["backend-store-uri"]
    service = find(render("infra/k8s/mlflow-db"), "Service", "mlflow-db")
    assert f"@{service['metadata']['name']}.jointssl.svc:{service['spec']['ports'][0]['port']}/mlflow" in uri
    init = find(render("infra/k8s/mlflow-db"), "ConfigMap", "mlflow-db-init")["data"]
    assert "CREATE DATABASE mlflow_auth;" in "".join(init.values())
