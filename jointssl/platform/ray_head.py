"""A Ray head node: the cluster jobs run on, with the dashboard's job API for ``ray job submit``.

``ray start --head --block`` keeps one foreground process we can record and stop by PID (its own
shutdown stops GCS, raylet and the dashboard; whatever survives is stopped by PID too). Ray 2.60
authenticates with a token: the platform generates one and points Ray at it with
``RAY_AUTH_MODE=token`` + ``RAY_AUTH_TOKEN_PATH``, which ``jointssl platform env`` exports for clients.
Ray must run in a loopback-only network namespace to stay on 127.0.0.1 (see infra/local/).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from jointssl.platform.credentials import ray_token_file
from jointssl.platform.process import LOOPBACK, http_ok
from jointssl.platform.service import Service

log = logging.getLogger(__name__)

# Ray puts Unix sockets at <temp>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store: ~60
# characters past the temp dir, and a socket path may have at most 107.
MAX_TEMP_DIR_CHARS = 45


def temp_dir_for(home: Path) -> Path:
    """``<home>/data/ray`` when short enough for Ray's socket paths, else a short path named by home."""
    wanted = home / "data" / "ray"
    if len(str(wanted)) <= MAX_TEMP_DIR_CHARS:
        return wanted
    return Path("/tmp") / f"jointssl-ray-{hashlib.sha1(str(home).encode()).hexdigest()[:10]}"


class RayHead(Service):
    name = "ray"
    start_timeout = 90.0  # ~10 s measured on 2 cores alone, more while PostgreSQL and MLflow start
    stop_timeout = 5.0
    """After a Ray Train job, ``ray start --block`` outlived SIGTERM by more than 20 s (measured on 2 cores) while
    an idle head stops in ~2 s. The head keeps nothing to save (no GCS persistence), so what is left after 5 s is
    stopped by PID."""

    def ports(self) -> dict[str, int]:
        p = self.settings.ports
        return {"Ray GCS": p.ray_gcs, "Ray dashboard": p.ray_dashboard, "Ray client server": p.ray_client}

    def check_installed(self) -> None:
        self.require("ray")

    @property
    def temp_dir(self) -> Path:
        return temp_dir_for(self.settings.home)

    def prepare(self) -> None:
        if not os.environ.get("JOINTSSL_IN_NETNS"):
            log.warning(
                "ray: not in a loopback-only network namespace; Ray may listen on other interfaces too "
                "(run under infra/local/loopback-netns.sh to keep it on 127.0.0.1)"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.temp_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        p = self.settings.ports
        argv = [
            self.require("ray"),
            "start",
            "--head",
            "--block",
            "--node-ip-address",
            LOOPBACK,
            "--port",
            str(p.ray_gcs),
            "--include-dashboard",
            "true",
            "--dashboard-host",
            LOOPBACK,
            "--dashboard-port",
            str(p.ray_dashboard),
            "--ray-client-server-port",
            str(p.ray_client),
            "--temp-dir",
            str(self.temp_dir),
            "--object-store-memory",
            str(self.settings.ray_object_store_bytes),
            "--disable-usage-stats",
        ]
        if self.settings.ray_num_cpus is not None:
            argv += ["--num-cpus", str(self.settings.ray_num_cpus)]
        return argv

    def _auth_env(self) -> dict[str, str]:
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(ray_token_file(self.settings.home))}

    def environment(self) -> dict[str, str]:
        from jointssl.platform.mlflow_server import MlflowServer
        from jointssl.platform.seaweedfs import SeaweedFS
        from jointssl.platform.stac_api import StacApi

        # what Ray tasks and Train workers need to reach the other services, as a cluster's pods get
        # it from Secrets: S3 endpoint + credentials, the STAC API, the MLflow server
        services = {}
        for kind in (SeaweedFS, StacApi, MlflowServer):
            services.update(kind(self.settings, self.creds).client_env())
        env = {**os.environ, **services, **self._auth_env(), "RAY_USAGE_STATS_ENABLED": "0"}
        env.pop("RAY_ADDRESS", None)  # a client setting: would make 'ray start --head' join another cluster
        return env

    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.settings.ports.ray_dashboard}"

    def healthy(self) -> bool:
        headers = {"Authorization": f"Bearer {self.creds.ray_token}"}
        return http_ok(f"{self.url()}/api/gcs_healthz", headers=headers) and http_ok(
            f"{self.url()}/api/version", headers=headers
        )

    def client_env(self) -> dict[str, str]:
        return {
            "RAY_ADDRESS": self.url(),  # job submission: ray job submit / JobSubmissionClient
            "JOINTSSL_RAY_GCS_ADDRESS": f"{LOOPBACK}:{self.settings.ports.ray_gcs}",  # ray.init(address=...)
            **self._auth_env(),
        }
