"""PostgreSQL + PostGIS: an ``initdb`` cluster of our own, on 127.0.0.1 only, for pgstac and MLflow.

Debian's packaged server (no systemd here, and the system cluster is not ours to touch) runs from
the platform home. PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` OS user.
Password (scram) authentication on TCP only; no Unix socket, so nothing lands in /var/run.
"""

from __future__ import annotations

import glob
import os
import pwd
import signal
import subprocess
from pathlib import Path

from jointssl.errors import JointsslError
from jointssl.platform.process import LOOPBACK
from jointssl.platform.service import Service

DATABASES = ("pgstac", "mlflow")
APT_HINT = (
    "apt-get install --no-install-recommends postgresql-15 postgresql-15-postgis-3 postgresql-contrib "
    "(or run scripts/setup.sh as root)"
)


def find_bindir() -> Path | None:
    """Debian's ``/usr/lib/postgresql/<version>/bin``, newest version with PostGIS first."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_version, reverse=True)
    with_postgis = [c for c in candidates if _postgis_control(Path(c).parent)]
    chosen = next(iter(with_postgis or candidates), None)
    return None if chosen is None else Path(chosen).parent


def _version(path: str) -> int:
    try:
        return int(Path(path).parent.parent.name)
    except ValueError:
        return 0


def _postgis_control(bindir: Path) -> Path | None:
    control = Path("/usr/share/postgresql") / bindir.parent.name / "extension" / "postgis.control"
    return control if control.exists() else None


class Postgres(Service):
    name = "postgres"
    start_timeout = 60.0  # ~1 s warm; initdb on first up adds ~3 s
    stop_signal = signal.SIGINT  # "fast" shutdown: SIGTERM would wait for every client to leave

    def ports(self) -> dict[str, int]:
        return {"PostgreSQL": self.settings.ports.postgres}

    @property
    def bindir(self) -> Path:
        bindir = find_bindir()
        if bindir is None:
            raise JointsslError("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin", hint=APT_HINT)
        return bindir

    def check_installed(self) -> None:
        bindir = self.bindir
        if _postgis_control(bindir) is None:
            raise JointsslError(f"PostGIS for PostgreSQL {bindir.parent.name} is not installed", hint=APT_HINT)
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise JointsslError(
                    "running as root, but there is no 'postgres' OS user to run PostgreSQL as "
                    "(PostgreSQL refuses to run as root)",
                    hint=APT_HINT,
                ) from None

    def user(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    def prepare(self) -> None:
        data = self.data_dir
        data.mkdir(parents=True, exist_ok=True)
        user = self.user()
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(data, entry.pw_uid, entry.pw_gid)
        data.chmod(0o700)
        if user is not None and subprocess.run(["test", "-w", str(data)], user=user, check=False).returncode:
            raise JointsslError(
                f"the '{user}' OS user cannot reach {data} (PostgreSQL runs as '{user}' when you are root)",
                hint="choose a --home whose parent directories others may enter (chmod o+x), e.g. under /work or /srv",
            )
        if (data / "cluster" / "PG_VERSION").exists():
            return
        pwfile = data / "initdb.pw"
        pwfile.write_text(self.creds.postgres_password + "\n")
        pwfile.chmod(0o600)
        if user is not None:
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        try:
            done = subprocess.run(
                [
                    str(self.bindir / "initdb"),
                    f"--pgdata={data / 'cluster'}",
                    f"--username={self.creds.postgres_user}",
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",  # a fresh, empty cluster: nothing to lose, saves seconds
                ],
                user=user,
                group=user,
                cwd=data,
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode:
            raise JointsslError(f"initdb failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}",
                                hint=f"remove {data} and retry")

    def command(self) -> list[str]:
        return [
            str(self.bindir / "postgres"),
            "-D",
            str(self.data_dir / "cluster"),
            "-p",
            str(self.settings.ports.postgres),
            "-c",
            f"listen_addresses={LOOPBACK}",
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=100",
            "-c",
            "shared_buffers=256MB",
        ]

    def environment(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}

    def dsn(self, database: str = "postgres", driver: str = "postgresql") -> str:
        c = self.creds
        return f"{driver}://{c.postgres_user}:{c.postgres_password}@{LOOPBACK}:{self.settings.ports.postgres}/{database}"

    def url(self) -> str:
        return f"postgresql://{LOOPBACK}:{self.settings.ports.postgres}"

    def healthy(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def after_start(self) -> None:
        """The databases pgstac and MLflow use, and PostGIS in pgstac's."""
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5) as conn:
            existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
            for name in DATABASES:
                if name not in existing:
                    conn.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(self.dsn("pgstac"), autocommit=True, connect_timeout=5) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    def client_env(self) -> dict[str, str]:
        return {"JOINTSSL_PGSTAC_DSN": self.dsn("pgstac")}
