"""The STAC API: stac-fastapi-pgstac under uvicorn, on the platform's PostgreSQL.

Production-grade search (bbox, datetime, collections, ``query``, CQL2 ``filter``, sortby, paging)
that pystac-client talks to exactly as to a public catalog. The schema comes from ``pypgstac
migrate`` (idempotent, run before each start); items are loaded with ``pypgstac load`` using
``JOINTSSL_PGSTAC_DSN``. The Transactions extension is on, so POSTing collections/items also works.
"""

from __future__ import annotations

import os
import subprocess

from jointssl.errors import JointsslError
from jointssl.platform.process import LOOPBACK, http_ok
from jointssl.platform.service import Service


class StacApi(Service):
    name = "stac"
    depends_on = ("postgres",)
    start_timeout = 60.0  # ~3 s measured

    def ports(self) -> dict[str, int]:
        return {"STAC API": self.settings.ports.stac}

    def check_installed(self) -> None:
        self.require("pypgstac")
        self.require("uvicorn")
        try:
            import stac_fastapi.pgstac  # noqa: F401  # imported only to check that it is installed
        except ImportError:
            raise JointsslError("stac-fastapi-pgstac is not installed", hint="pip install -e '.[platform]'") from None

    def _pg_env(self) -> dict[str, str]:
        c = self.creds
        return {
            "PGHOST": LOOPBACK,
            "PGPORT": str(self.settings.ports.postgres),
            "PGUSER": c.postgres_user,
            "PGPASSWORD": c.postgres_password,
            "PGDATABASE": "pgstac",
        }

    def prepare(self) -> None:
        """Create or upgrade the pgstac schema (a no-op when it is current)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self._pg_env()}
        with open(self.process.log_file, "ab") as out:
            done = subprocess.run(
                [self.require("pypgstac"), "migrate"], env=env, stdout=out, stderr=subprocess.STDOUT, check=False
            )
        if done.returncode:
            raise JointsslError(f"pypgstac migrate failed; see {self.process.log_file}", hint="read the log above it")

    def command(self) -> list[str]:
        return [
            self.require("uvicorn"),
            "stac_fastapi.pgstac.app:create_app",
            "--factory",
            "--host",
            LOOPBACK,
            "--port",
            str(self.settings.ports.stac),
            "--workers",
            "1",
            "--no-access-log",
        ]

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            **self._pg_env(),
            "ENABLE_TRANSACTIONS_EXTENSIONS": "true",
            "DB_MIN_CONN_SIZE": "1",
            "DB_MAX_CONN_SIZE": "5",
        }

    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.settings.ports.stac}"

    def healthy(self) -> bool:
        return http_ok(f"{self.url()}/_mgmt/ping") and http_ok(f"{self.url()}/collections")

    def client_env(self) -> dict[str, str]:
        return {"JOINTSSL_STAC_URL": self.url()}
