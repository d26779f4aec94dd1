"""RayJobs on Kubernetes from a template: the one module of jointssl that knows a cluster exists.

The library and the jobs are cluster-agnostic: they reach storage, catalogs and MLflow by URL and run on
whatever Ray cluster they are given. Scheduled inference needs one thing more: something that starts a
run every night. On Kubernetes that is a CronJob whose pod runs ``jointssl schedule``, which turns the
RayJob template kustomize ships (k8s/base/inference/template/rayjob-infer.yaml) into one RayJob per run,
creates it through the API with the pod's own, least-privileged identity, and can wait for its outcome.

Building a RayJob is plain data and needs neither a cluster nor the ``kubernetes`` client; the client is
imported inside the functions that talk to the API server, so importing this module has no side effects.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jointssl.config.load import ConfigError, read_yaml
from jointssl.errors import JointsslError

log = logging.getLogger(__name__)

GROUP = "ray.io"
VERSION = "v1"
PLURAL = "rayjobs"
KIND = "RayJob"
API_VERSION = f"{GROUP}/{VERSION}"

NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
"""Where Kubernetes tells a pod its namespace (mounted with the service account token)."""

MANAGED_BY = "jointssl-schedule"
SCHEDULED_AT_LABEL = "jointssl.io/scheduled-at"

MAX_NAME_LENGTH = 47
"""KubeRay names the RayJob's cluster <name>-<5 characters> and its head Service <cluster>-head-svc, and a
Service name is a 63-character DNS label: 47 + 6 + 9 = 62."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_TERMINAL_DEPLOYMENT_STATUSES = ("Complete", "Failed")


def load_template(path: Path) -> dict[str, Any]:
    """The RayJob manifest at ``path``, checked enough that a broken ConfigMap fails before the API call."""
    template = read_yaml(path)
    source = str(path)
    if template.get("apiVersion") != API_VERSION or template.get("kind") != KIND:
        found = f"{template.get('apiVersion')}/{template.get('kind')}"
        raise ConfigError("kind", f"expected a {API_VERSION} {KIND} manifest, found {found}", source)
    spec = template.get("spec")
    if not isinstance(spec, dict):
        raise ConfigError("spec", "a RayJob needs a spec mapping", source)
    if not isinstance(spec.get("entrypoint"), str) or not spec["entrypoint"].strip():
        raise ConfigError("spec.entrypoint", "a RayJob needs the command to run (entrypoint)", source)
    if not isinstance(spec.get("rayClusterSpec"), dict):
        raise ConfigError("spec.rayClusterSpec", "the template must describe the Ray cluster to create", source)
    name = (template.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not _DNS_LABEL.match(name):
        raise ConfigError("metadata.name", f"{name!r} is not a lowercase DNS label (it prefixes every run's name)",
                          source)
    return template


def run_name(prefix: str, now: datetime.datetime) -> str:
    """``<prefix>-<UTC date>-<UTC time>``: unique per second, readable, and sorted by time in ``kubectl get``."""
    return f"{prefix}-{now.astimezone(datetime.timezone.utc):%Y%m%d-%H%M%S}"


def build_rayjob(
    template: dict[str, Any],
    *,
    name: str,
    now: datetime.datetime,
    namespace: str | None = None,
    images: dict[str, str] | None = None,
    replicas: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One run's RayJob: the template under a new name, labelled, with real images and worker counts.

    ``images`` maps image names used in the template (``jointssl``, with or without a tag) to full
    references, as kustomize's ``images`` does for the other manifests; ``replicas`` maps worker group
    names to a fixed number of pods. Either naming something absent from the template is an error, so a
    typo in the CronJob's arguments cannot silently run the placeholder image or the default size.
    """
    if len(name) > MAX_NAME_LENGTH or not _DNS_LABEL.match(name):
        raise ConfigError("name", f"{name!r} is not a lowercase DNS label of at most {MAX_NAME_LENGTH} characters",
                          "command line")
    template_labels = (template.get("metadata") or {}).get("labels") or {}
    job: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "labels": {
                **template_labels,
                "app.kubernetes.io/managed-by": MANAGED_BY,
                SCHEDULED_AT_LABEL: f"{now.astimezone(datetime.timezone.utc):%Y%m%dT%H%M%SZ}",
            },
        },
        "spec": copy.deepcopy(template["spec"]),
    }
    if namespace:
        job["metadata"]["namespace"] = namespace
    _set_images(job, images or {})
    _set_replicas(job, replicas or {})
    return job


def containers(job: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every container and init container of a RayJob: head, each worker group, and the submitter."""
    spec = job["spec"]
    cluster = spec.get("rayClusterSpec") or {}
    templates = [cluster.get("headGroupSpec", {}).get("template", {})]
    templates += [group.get("template", {}) for group in cluster.get("workerGroupSpecs") or []]
    templates.append(spec.get("submitterPodTemplate") or {})
    for pod in templates:
        pod_spec = pod.get("spec") or {}
        yield from pod_spec.get("initContainers") or []
        yield from pod_spec.get("containers") or []


def _set_images(job: dict[str, Any], images: dict[str, str]) -> None:
    used = set()
    for container in containers(job):
        base = _image_name(container.get("image", ""))
        if base in images:
            container["image"] = images[base]
            used.add(base)
    unused = sorted(set(images) - used)
    if unused:
        present = sorted({_image_name(c.get("image", "")) for c in containers(job)})
        raise ConfigError("image", f"{', '.join(unused)} is not an image of the template (it uses: "
                          f"{', '.join(present)})", "command line")


def _image_name(reference: str) -> str:
    """``registry:5000/team/app:tag@sha256:...`` -> ``registry:5000/team/app``
    (a tag's colon follows the last slash)."""
    name = reference.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _set_replicas(job: dict[str, Any], replicas: dict[str, int]) -> None:
    groups = {g.get("groupName"): g for g in job["spec"]["rayClusterSpec"].get("workerGroupSpecs") or []}
    for group_name, count in replicas.items():
        if group_name not in groups:
            raise ConfigError("replicas", f"the template has no worker group {group_name!r} "
                              f"(it has: {', '.join(sorted(map(str, groups)))})", "command line")
        groups[group_name].update(replicas=count, minReplicas=count, maxReplicas=count)


def to_text(job: dict[str, Any], output: str) -> str:
    """The RayJob as ``kubectl apply -f`` reads it, YAML or JSON."""
    if output == "json":
        return json.dumps(job, indent=2)
    import yaml

    text: str = yaml.safe_dump(job, sort_keys=False)
    return text


def namespace_in_cluster() -> str | None:
    """The namespace of the pod this runs in, or None outside a cluster."""
    try:
        return NAMESPACE_FILE.read_text().strip() or None
    except OSError:
        return None


def connect() -> tuple[Any, str]:
    """A ``CustomObjectsApi`` and the namespace to use by default: the pod's own identity and namespace
    inside a cluster, else the current kubeconfig context (for running the command by hand)."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]  # kubernetes leaves it unannotated
        return client.CustomObjectsApi(), namespace_in_cluster() or "default"
    except config.ConfigException:
        pass
    try:
        config.load_kube_config()  # type: ignore[no-untyped-call]  # kubernetes leaves it unannotated
        _, context = config.list_kube_config_contexts()  # type: ignore[no-untyped-call]  # as above
    except (config.ConfigException, OSError) as err:
        raise JointsslError(f"no Kubernetes credentials: not inside a pod, and no usable kubeconfig ({err})",
                            hint="run it in the cluster (the CronJob does), or set KUBECONFIG") from None
    return client.CustomObjectsApi(), context.get("context", {}).get("namespace") or "default"


def create(api: Any, job: dict[str, Any]) -> None:
    """Create the RayJob, turning the API's refusals into messages that say what to check."""
    from kubernetes.client.exceptions import ApiException

    meta = job["metadata"]
    where = f"{meta['namespace']}/{meta['name']}"
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, meta["namespace"], PLURAL, job)
    except ApiException as err:
        hints = {
            403: "the pod's service account may only create and get rayjobs.ray.io in its namespace: "
                 "check the Role and RoleBinding jointssl-scheduler (k8s/base/inference/rbac.yaml)",
            404: "is the KubeRay operator (chart 1.7.0) with its CRDs installed, and does the namespace exist? "
                 "(infra/k8s/README.md)",
            409: "a RayJob of that name exists already: runs are named by the second, so two schedulers raced; "
                 "the other one's run is under way",
            422: "the API server rejected the template: validate it with 'jointssl schedule --dry-run'",
        }
        raise JointsslError(f"cannot create RayJob {where}: {err.status} {err.reason}: {_api_message(err)}",
                            hint=hints.get(err.status, "see the message above")) from None


def _api_message(err: Any) -> str:
    try:
        return str(json.loads(err.body).get("message", err.body))
    except (TypeError, ValueError, AttributeError):
        return str(err.body)


@dataclass(frozen=True)
class Outcome:
    """How a RayJob ended, as KubeRay reports it."""

    deployment_status: str
    """KubeRay's view: Complete or Failed (the cluster was created, the job ran and was followed)."""
    job_status: str | None
    """Ray's view of the job itself: SUCCEEDED, FAILED, STOPPED (None if it never started)."""
    message: str

    @property
    def succeeded(self) -> bool:
        return self.deployment_status == "Complete" and self.job_status == "SUCCEEDED"

    def describe(self) -> str:
        text = f"{self.deployment_status}, job {self.job_status or 'never started'}"
        return f"{text}: {self.message}" if self.message else text


def outcome(job: dict[str, Any]) -> Outcome | None:
    """The outcome of a RayJob object from the API, or None while it is still under way."""
    status = job.get("status") or {}
    deployment = status.get("jobDeploymentStatus")
    if deployment not in _TERMINAL_DEPLOYMENT_STATUSES:
        return None
    message = " ".join(str(status[k]) for k in ("reason", "message") if status.get(k))
    return Outcome(deployment, status.get("jobStatus"), message)


def wait(
    api: Any,
    namespace: str,
    name: str,
    *,
    timeout_s: float,
    poll_s: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Follow a RayJob until KubeRay reports it Complete or Failed.

    One GET per ``poll_s`` (a run takes hours; a watch would buy nothing but reconnect handling), so the
    scheduler's Role needs only ``get`` besides ``create``. Deployment-status changes are logged, which
    puts the run's progress in the CronJob pod's log.
    """
    from kubernetes.client.exceptions import ApiException

    deadline = clock() + timeout_s
    last = None
    while True:
        try:
            job = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as err:
            if err.status == 404:
                raise JointsslError(f"RayJob {namespace}/{name} was deleted before it finished",
                                    hint="someone or something removed it: see 'kubectl get events'") from None
            raise JointsslError(f"cannot follow RayJob {namespace}/{name}: {err.status} {err.reason}") from None
        status = job.get("status") or {}
        current = (status.get("jobDeploymentStatus"), status.get("jobStatus"))
        if current != last:
            log.info("RayJob %s/%s: %s, job %s", namespace, name, current[0] or "New", current[1] or "-")
            last = current
        done = outcome(job)
        if done is not None:
            return done
        remaining = deadline - clock()
        if remaining <= 0:
            raise JointsslError(f"RayJob {namespace}/{name} has not finished within {timeout_s:.0f} s",
                                hint="it keeps running under its own activeDeadlineSeconds; "
                                     f"follow it with 'kubectl -n {namespace} get rayjob {name}'")
        sleep(min(poll_s, remaining))
