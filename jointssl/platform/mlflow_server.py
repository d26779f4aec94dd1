"""The MLflow tracking server: runs, params, metrics and artifacts for every job.

Lean on purpose (``--workers 1`` and no job-execution workers: 2 processes, ~0.5 GiB instead of 15 and
~3 GiB). Its backend store is the platform's PostgreSQL; artifacts are proxied by the server into
the SeaweedFS bucket ``s3://mlflow/artifacts``, so clients need only ``MLFLOW_TRACKING_URI`` and no
S3 credentials of their own.
"""

from __future__ import annotations

import os

from jointssl.platform.process import LOOPBACK, http_ok
from jointssl.platform.seaweedfs import SeaweedFS
from jointssl.platform.service import Service

ARTIFACTS_DESTINATION = "s3://mlflow/artifacts"


class MlflowServer(Service):
    name = "mlflow"
    depends_on = ("postgres", "seaweedfs")
    start_timeout = 120.0  # ~10 s warm; the first start also creates MLflow's tables

    def ports(self) -> dict[str, int]:
        return {"MLflow": self.settings.ports.mlflow}

    def check_installed(self) -> None:
        self.require("mlflow")

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [
            self.require("mlflow"),
            "server",
            "--host",
            LOOPBACK,
            "--port",
            str(self.settings.ports.mlflow),
            "--workers",
            "1",
            "--serve-artifacts",
            "--artifacts-destination",
            ARTIFACTS_DESTINATION,
        ]

    def environment(self) -> dict[str, str]:
        from jointssl.platform.postgres import Postgres

        s3 = SeaweedFS(self.settings, self.creds).client_env()
        return {
            **os.environ,
            # the password travels in the environment, not on the command line where ps shows it
            "MLFLOW_BACKEND_STORE_URI": Postgres(self.settings, self.creds).dsn("mlflow", "postgresql+psycopg"),
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_S3_ENDPOINT_URL": s3["AWS_ENDPOINT_URL"],
            "AWS_ACCESS_KEY_ID": s3["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": s3["AWS_SECRET_ACCESS_KEY"],
            "AWS_DEFAULT_REGION": s3["AWS_REGION"],
        }

    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.settings.ports.mlflow}"

    def healthy(self) -> bool:
        return http_ok(f"{self.url()}/health")

    def client_env(self) -> dict[str, str]:
        return {"MLFLOW_TRACKING_URI": self.url()}
