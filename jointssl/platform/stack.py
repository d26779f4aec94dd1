"""The whole local platform: bring it up, report on it, print its client environment, bring it down.

``up`` checks everything it can before starting anything (binaries, ports), starts independent
services concurrently (SeaweedFS, PostgreSQL and Ray at once; the STAC API and MLflow when their
dependencies are healthy), reuses services that already run healthy from this home (so ``up`` twice
is harmless), and on any failure stops what *this* call started and reports the failing service's
log. ``down`` stops every recorded PID and checks that none is left.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from jointssl.errors import JointsslError
from jointssl.platform import credentials
from jointssl.platform.mlflow_server import MlflowServer
from jointssl.platform.postgres import Postgres
from jointssl.platform.process import is_alive, port_in_use
from jointssl.platform.ray_head import RayHead
from jointssl.platform.seaweedfs import SeaweedFS
from jointssl.platform.service import Service
from jointssl.platform.settings import PlatformSettings
from jointssl.platform.stac_api import StacApi

log = logging.getLogger(__name__)

SERVICE_TYPES: tuple[type[Service], ...] = (SeaweedFS, Postgres, RayHead, StacApi, MlflowServer)
SERVICE_NAMES = tuple(t.name for t in SERVICE_TYPES)
# Stopped in waves: clients of the stores first, then the stores.
STOP_WAVES = (("mlflow", "stac", "ray"), ("postgres", "seaweedfs"))


@dataclass
class ServiceStatus:
    name: str
    url: str
    pid: int | None
    healthy: bool


@dataclass
class UpResult:
    seconds: float
    started: dict[str, float]  # service -> seconds until healthy
    reused: list[str]


def build_services(settings: PlatformSettings, creds: credentials.Credentials | None) -> dict[str, Service]:
    return {t.name: t(settings, creds) for t in SERVICE_TYPES}


@contextmanager
def _home_lock(home: Path) -> Iterator[None]:
    """One ``up``/``down`` at a time per home: two would race on pid files and ports."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JointsslError(
                f"another 'jointssl platform' command is working on {home}", hint="wait for it to finish"
            ) from None
        yield


def up(settings: PlatformSettings, only: Sequence[str] | None = None) -> UpResult:
    """Start (or reuse) the services named in ``only`` (default: all) and their dependencies."""
    began = time.monotonic()
    with _home_lock(settings.home):
        creds = credentials.load_or_create(settings.home)
        services = build_services(settings, creds)
        wanted = _with_dependencies(services, only or SERVICE_NAMES)
        _check_same_settings(settings, services)
        problems = []
        for name in wanted:
            try:
                services[name].check_installed()
            except JointsslError as err:
                problems.append(str(err))
        if problems:
            raise JointsslError("missing software:\n  " + "\n  ".join(problems))
        reused = [n for n in wanted if _reusable(services[n])]
        to_start = [n for n in wanted if n not in reused]
        _check_ports([services[n] for n in to_start])
        settings.save()
        started = _start_all(services, to_start, reused)
    return UpResult(seconds=time.monotonic() - began, started=started, reused=reused)


def _with_dependencies(services: dict[str, Service], names: Sequence[str]) -> list[str]:
    unknown = [n for n in names if n not in services]
    if unknown:
        raise JointsslError(f"unknown service(s) {unknown}", hint=f"choose from {', '.join(SERVICE_NAMES)}")
    wanted: set[str] = set()
    frontier = list(names)
    while frontier:
        name = frontier.pop()
        if name not in wanted:
            wanted.add(name)
            frontier.extend(services[name].depends_on)
    return [n for n in SERVICE_NAMES if n in wanted]


def _check_same_settings(settings: PlatformSettings, services: dict[str, Service]) -> None:
    """A running platform keeps its ports: refuse to half-move it."""
    if not any(s.process.running() for s in services.values()):
        return
    previous = PlatformSettings.load(settings.home)
    if previous.ports != settings.ports or previous.ray_num_cpus != settings.ray_num_cpus:
        raise JointsslError(
            f"the platform in {settings.home} is running with other ports or settings",
            hint="run 'jointssl platform down' first, or repeat 'up' with the same options",
        )


def _reusable(service: Service) -> bool:
    """A service already running from this home and healthy is kept; a sick one is restarted."""
    record = service.process.running()
    if record is None:
        return False
    if service.healthy():
        log.info("%s: already running (PID %d), reused", service.name, record.pid)
        return True
    log.warning("%s: running (PID %d) but not healthy: restarting it", service.name, record.pid)
    service.process.stop(service.stop_signal, service.stop_timeout)
    return False


def _check_ports(services: Sequence[Service]) -> None:
    busy = [
        f"port {port} ({what}, service '{s.name}') is already in use"
        for s in services
        for what, port in s.ports().items()
        if port_in_use(port)
    ]
    if busy:
        raise JointsslError(
            "cannot start the platform: " + "; ".join(busy),
            hint="stop whatever listens there, or choose other ports (see 'jointssl platform up --help')",
        )


def _start_all(services: dict[str, Service], to_start: list[str], reused: list[str]) -> dict[str, float]:
    """Start ``to_start`` concurrently, each after its dependencies are healthy; on any failure stop
    every service this call started and raise the first real error."""
    abort = threading.Event()
    launched: list[str] = []
    lock = threading.Lock()
    futures: dict[str, Future[float]] = {}

    def start_one(name: str) -> float:
        service = services[name]
        for dep in service.depends_on:
            if dep in futures:
                futures[dep].result()  # re-raises the dependency's failure
        if abort.is_set():
            raise _Aborted(name)
        began = time.monotonic()
        service.prepare()
        if abort.is_set():
            raise _Aborted(name)
        with lock:
            launched.append(name)
        service.process.start(service.command(), service.environment(), service.cwd(), service.user())

        def check() -> bool:
            if abort.is_set():
                raise _Aborted(name)
            return service.healthy()

        service.process.wait_healthy(check, timeout=service.start_timeout)
        service.after_start()
        service.process.remember_helpers()
        seconds = time.monotonic() - began
        log.info("%s: healthy at %s after %.1f s", name, service.url(), seconds)
        return seconds

    with ThreadPoolExecutor(max_workers=max(1, len(to_start)), thread_name_prefix="platform-up") as pool:
        for name in to_start:
            futures[name] = pool.submit(start_one, name)
        try:
            _, pending = wait(futures.values(), return_when=FIRST_EXCEPTION)
            if pending:  # one failed: tell the others to give up, then let them finish
                abort.set()
                wait(pending)
        except BaseException:  # KeyboardInterrupt while waiting
            abort.set()
            pool.shutdown(wait=True)
            _stop(services, launched)
            raise
    errors = {n: f.exception() for n, f in futures.items() if f.exception() is not None}
    if errors:
        _stop(services, launched)
        first = next((e for e in errors.values() if not isinstance(e, _Aborted)), next(iter(errors.values())))
        failed = next(n for n, e in errors.items() if e is first)
        stopped = f" (stopped what this 'up' started: {', '.join(launched)})" if launched else ""
        if isinstance(first, JointsslError):
            raise JointsslError(f"{failed}: {first.message}{stopped}", hint=first.hint) from first
        raise JointsslError(f"{failed}: {first!r}{stopped}") from first
    return {n: f.result() for n, f in futures.items()}


class _Aborted(JointsslError):
    def __init__(self, name: str):
        super().__init__(f"{name}: start abandoned because another service failed")


def _stop(services: dict[str, Service], names: Sequence[str]) -> list[int]:
    """Stop ``names`` wave by wave (concurrently within a wave); return PIDs left alive."""
    left: list[int] = []
    for wave in STOP_WAVES:
        batch = [services[n] for n in wave if n in names]
        if not batch:
            continue
        with ThreadPoolExecutor(max_workers=len(batch), thread_name_prefix="platform-down") as pool:
            for survivors in pool.map(lambda s: s.process.stop(s.stop_signal, s.stop_timeout), batch):
                left.extend(survivors)
    return left


def down(home: Path | str) -> list[int]:
    """Stop every service of ``home`` by PID; return the recorded PIDs still alive (normally none)."""
    settings = PlatformSettings.load(home)
    with _home_lock(settings.home):
        services = build_services(settings, credentials.load(settings.home))
        recorded = {p: s for svc in services.values() for p, s in svc.process.recorded_pids().items()}
        left = _stop(services, SERVICE_NAMES)
        left += [p for p, s in recorded.items() if is_alive(p, s) and p not in left]
    if left:
        log.error("still running after down: PIDs %s", sorted(left))
    return sorted(left)


def status(home: Path | str) -> list[ServiceStatus]:
    settings = PlatformSettings.load(home)
    creds = credentials.load(settings.home)
    report = []
    for service in build_services(settings, creds).values():
        record = service.process.running()
        healthy = record is not None and creds is not None and service.healthy()
        report.append(ServiceStatus(service.name, service.url(), None if record is None else record.pid, healthy))
    return report


def client_env(home: Path | str) -> dict[str, str]:
    """What a job needs to use the platform of ``home``: endpoints, credentials, Ray auth."""
    settings = PlatformSettings.load(home)
    creds = credentials.load(settings.home)
    if creds is None:
        raise JointsslError(f"no platform has been started in {settings.home}", hint="run 'jointssl platform up'")
    env: dict[str, str] = {}
    for service in build_services(settings, creds).values():
        env.update(service.client_env())
    return env
