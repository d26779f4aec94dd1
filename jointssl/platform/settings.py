"""Where the local platform lives and which loopback ports it uses.

``jointssl platform up`` writes these settings to ``<home>/platform.json``; ``status``, ``env`` and
``down`` read them back, so a platform started on other ports is still found by its home alone.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

DEFAULT_HOME = ".jointssl/platform"


@dataclass
class Ports:
    """Loopback ports. Each default is the service's usual port, moved where it would clash."""

    s3: int = 8333  # SeaweedFS S3 gateway (SeaweedFS's own default)
    postgres: int = 5439  # not 5432: leaves a system PostgreSQL alone
    stac: int = 8081  # not 8080: SeaweedFS's volume server takes that
    mlflow: int = 5000  # MLflow's default
    ray_gcs: int = 6379  # Ray's default GCS port
    ray_dashboard: int = 8265  # Ray's default dashboard / job API port
    ray_client: int = 10001  # Ray's default client server port
    # SeaweedFS internals; each also uses port + 10000 for gRPC.
    seaweedfs_master: int = 9333
    seaweedfs_volume: int = 8080
    seaweedfs_filer: int = 8888
    seaweedfs_admin: int = 23646


def free_ports() -> Ports:
    """Free, distinct, non-default loopback ports in 20000-29999, each with PORT+10000 free too (SeaweedFS
    puts gRPC there); below the kernel's ephemeral range so no client takes them between restarts."""
    from jointssl.platform.process import port_in_use

    defaults = {getattr(Ports(), f.name) for f in fields(Ports)}
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    taken: set[int] = set()
    chosen: dict[str, int] = {}
    for f in fields(Ports):
        while True:
            port = rng.randint(20000, 29999)
            if {port, port + 10000} & (taken | defaults) or port_in_use(port) or port_in_use(port + 10000):
                continue
            taken |= {port, port + 10000}
            chosen[f.name] = port
            break
    return Ports(**chosen)


@dataclass
class PlatformSettings:
    home: Path
    ports: Ports = field(default_factory=Ports)
    ray_num_cpus: int | None = None  # None: Ray counts the machine's cores
    ray_object_store_bytes: int = 2 * 1024**3  # 2 GiB: enough for chips in flight, lean on 24 GiB

    def __post_init__(self) -> None:
        self.home = Path(self.home).absolute()

    # Layout of the home directory.
    @property
    def settings_file(self) -> Path:
        return self.home / "platform.json"

    @property
    def secrets_file(self) -> Path:
        return self.home / "secrets.json"

    def data_dir(self, service: str) -> Path:
        return self.home / "data" / service

    def log_file(self, service: str) -> Path:
        return self.home / "logs" / f"{service}.log"

    def save(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        payload = {
            "ports": asdict(self.ports),
            "ray_num_cpus": self.ray_num_cpus,
            "ray_object_store_bytes": self.ray_object_store_bytes,
        }
        tmp = self.settings_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
        os.replace(tmp, self.settings_file)

    @classmethod
    def load(cls, home: Path | str) -> PlatformSettings:
        """The settings of the last ``up`` in ``home``; the defaults when there was none."""
        settings = cls(home=Path(home))
        try:
            payload = json.loads(settings.settings_file.read_text())
        except FileNotFoundError:
            return settings
        known = {f.name for f in fields(Ports)}
        settings.ports = Ports(**{k: int(v) for k, v in payload.get("ports", {}).items() if k in known})
        settings.ray_num_cpus = payload.get("ray_num_cpus")
        settings.ray_object_store_bytes = int(payload.get("ray_object_store_bytes", settings.ray_object_store_bytes))
        return settings
