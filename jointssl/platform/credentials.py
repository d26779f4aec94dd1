"""The platform's secrets: S3 keys, the PostgreSQL password, the Ray auth token.

Generated at random on the first ``up`` (so no two homes share them and none sits in the repo), kept
in ``<home>/secrets.json`` and ``<home>/ray_auth_token`` with mode 0600, and never written to a log.
``jointssl platform env`` is the one place that prints them, for the shell that asked.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

S3_REGION = "us-east-1"  # SeaweedFS ignores the region; SigV4 clients still need one


@dataclass(frozen=True)
class Credentials:
    s3_access_key: str
    s3_secret_key: str
    postgres_user: str
    postgres_password: str
    ray_token: str

    @classmethod
    def generate(cls) -> Credentials:
        return cls(
            s3_access_key="jointssl" + secrets.token_hex(6),
            s3_secret_key=secrets.token_urlsafe(30),
            postgres_user="jointssl",
            postgres_password=secrets.token_hex(16),  # hex: safe unquoted in DSNs and shells
            ray_token=secrets.token_hex(32),  # Ray's own format: 256 bits as hex
        )

    def __repr__(self) -> str:  # never leak a secret through a log line or a traceback
        return f"Credentials(s3_access_key={self.s3_access_key!r}, <secrets hidden>)"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner may read, created with that mode (no window)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def ray_token_file(home: Path) -> Path:
    return home / "ray_auth_token"


def load_or_create(home: Path) -> Credentials:
    """The home's credentials, generated and stored on first use."""
    path = home / "secrets.json"
    try:
        creds = Credentials(**json.loads(path.read_text()))
    except FileNotFoundError:
        creds = Credentials.generate()
        write_private(path, json.dumps(asdict(creds), indent=2) + "\n")
    token_file = ray_token_file(home)
    if not token_file.exists() or token_file.read_text().strip() != creds.ray_token:
        write_private(token_file, creds.ray_token)
    return creds


def load(home: Path) -> Credentials | None:
    try:
        return Credentials(**json.loads((home / "secrets.json").read_text()))
    except FileNotFoundError:
        return None
