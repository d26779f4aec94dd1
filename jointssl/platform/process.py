"""A managed server process: started with a log file and a pid file, health-checked, stopped by PID.

Why not ``pkill``/``killall``/``ray stop``: they match by name and would stop a colleague's servers, or
a second platform running beside this one. Everything here acts on PIDs we started and recorded. A
server may fork helpers (Ray, MLflow's workers, PostgreSQL's backends), so a stop signals the recorded
PID, its live descendants (read from ``/proc``), the members of its own process group (each server is
started in a new session) and the helper PIDs recorded after start-up, each checked against its
recorded start time so a recycled PID is never hit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from jointssl.errors import JointsslError

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


# ----------------------------------------------------------------------------------------- /proc


def _proc_stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, pgid, start time in clock ticks) of a process, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[19])


def start_time(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return None if stat is None else stat[3]


def is_alive(pid: int, started: int | None = None) -> bool:
    """True while ``pid`` runs (zombies count as gone) and, if given, still has that start time."""
    stat = _proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return started is None or stat[3] == started


def _all_stats() -> dict[int, tuple[str, int, int, int]]:
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None:
                stats[int(entry)] = stat
    return stats


def descendants(pid: int) -> dict[int, int]:
    """Live descendants of ``pid`` and the members of its process group: ``{pid: start_time}``."""
    stats = _all_stats()
    root = stats.get(pid)
    found: dict[int, int] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, (_, ppid, _, started) in stats.items():
            if ppid == parent and child not in found:
                found[child] = started
                frontier.append(child)
    if root is not None:
        pgid = root[2]
        if pgid == pid:  # only our own group: never a shell's group we happened to inherit
            found.update({p: s[3] for p, s in stats.items() if s[2] == pgid and p != pid})
    return {p: s for p, s in found.items() if stats[p][0] not in ("Z", "X")}


def stop_pids(pids: Mapping[int, int | None], sig: int = signal.SIGTERM, timeout: float = 20.0,
              what: str = "") -> list[int]:
    """Send ``sig`` to each live PID (checked against its start time), SIGKILL what is left after
    ``timeout`` seconds; return the PIDs still alive at the end (normally none). ``what`` names them in
    the warning (e.g. the service)."""
    targets = {pid: started for pid, started in pids.items() if is_alive(pid, started)}
    for pid in targets:
        _signal(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(is_alive(p, s) for p, s in targets.items()):
        time.sleep(0.1)
    survivors = {p: s for p, s in targets.items() if is_alive(p, s)}
    if survivors:
        log.warning("%sPIDs %s did not stop within %.0f s: SIGKILL", f"{what}: " if what else "", sorted(survivors),
                    timeout)
        for pid in survivors:
            _signal(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and any(is_alive(p, s) for p, s in survivors.items()):
            time.sleep(0.05)
    for pid in targets:
        _reap(pid)
    return sorted(p for p, s in targets.items() if is_alive(p, s))


def _reap(pid: int) -> None:
    """Collect the exit status of a stopped child of ours, so it leaves no zombie behind."""
    with contextlib.suppress(ChildProcessError):  # not our child: its own parent (or init) reaps it
        os.waitpid(pid, os.WNOHANG)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


# ----------------------------------------------------------------------------------------- network


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when something already listens on (or holds) ``host:port``: binding it fails.

    SO_REUSEADDR as servers set it: a port left in TIME_WAIT by a stopped server counts as free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = LOOPBACK) -> int:
    """A port the kernel says is free now (for tests and the embedded STAC API)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def http_ok(url: str, timeout: float = 2.0, headers: Mapping[str, str] | None = None) -> bool:
    """True when GET ``url`` answers 2xx. Never raises: this is a health probe."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status: int = response.status
            return 200 <= status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def executable(name: str) -> str | None:
    """``name`` from this Python's environment first (the venv's ``bin/``), then from ``PATH``."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


# ----------------------------------------------------------------------------------------- managed


@dataclass
class ProcessRecord:
    """What the pid file holds: enough to find and stop the server from another ``jointssl`` call."""

    pid: int
    started: int
    argv0: str
    helpers: dict[str, int] = field(default_factory=dict)  # str(pid) -> start time (JSON keys)


class ManagedProcess:
    """One server under ``<home>/run/<name>.json`` (pid file) and ``<home>/logs/<name>.log``."""

    def __init__(self, name: str, home: Path):
        self.name = name
        self.pid_file = home / "run" / f"{name}.json"
        self.log_file = home / "logs" / f"{name}.log"

    def record(self) -> ProcessRecord | None:
        try:
            return ProcessRecord(**json.loads(self.pid_file.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def running(self) -> ProcessRecord | None:
        """The record when its main PID is still the process we started; stale files are removed."""
        record = self.record()
        if record is None:
            return None
        if is_alive(record.pid, record.started):
            return record
        leftovers = {int(p): s for p, s in record.helpers.items() if is_alive(int(p), s)}
        if leftovers:  # a crashed server's helpers: stop them so they do not hold ports
            stop_pids(leftovers, timeout=5.0)
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> ProcessRecord:
        """Start ``argv`` in a new session, output appended to the log file, and write the pid file."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {argv[0]}\n".encode())
            out.flush()
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(os.environ if env is None else env),
                cwd=cwd,
                start_new_session=True,  # own process group: stop() can find every helper
                user=user,
                group=user,
            )
        record = ProcessRecord(pid=process.pid, started=start_time(process.pid) or 0, argv0=argv[0])
        self._write(record)
        log.debug("%s: started PID %d: %s", self.name, process.pid, argv[0])
        return record

    def wait_healthy(self, check: Callable[[], bool], timeout: float, interval: float = 0.25) -> float:
        """Poll ``check`` until it passes; return the seconds it took. Raise with the log tail when the
        process exits first or ``timeout`` passes."""
        began = time.monotonic()
        while True:
            if check():
                return time.monotonic() - began
            record = self.record()
            if record is None or not is_alive(record.pid, record.started):
                raise JointsslError(
                    f"{self.name} exited during start-up; last lines of {self.log_file}:\n{log_tail(self.log_file)}",
                    hint=f"read {self.log_file}",
                )
            if time.monotonic() - began > timeout:
                raise JointsslError(
                    f"{self.name} did not become healthy within {timeout:.0f} s; last lines of "
                    f"{self.log_file}:\n{log_tail(self.log_file)}",
                    hint=f"read {self.log_file}",
                )
            time.sleep(interval)

    def remember_helpers(self) -> None:
        """Record the server's current helper processes, so a stop finds them even if orphaned."""
        record = self.running()
        if record is not None:
            record.helpers.update({str(p): s for p, s in descendants(record.pid).items()})
            self._write(record)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> list[int]:
        """Stop the server and its helpers by PID; return PIDs that survived (normally none)."""
        record = self.record()
        if record is None:
            return []
        targets: dict[int, int | None] = {record.pid: record.started}
        if is_alive(record.pid, record.started):
            targets.update(descendants(record.pid))
        targets.update({int(p): s for p, s in record.helpers.items()})
        # The main PID gets ``sig`` (e.g. PostgreSQL's fast shutdown); it stops its own helpers, and
        # whatever it leaves behind gets SIGTERM, then SIGKILL.
        left = stop_pids({record.pid: record.started}, sig=sig, timeout=timeout, what=f"{self.name} ({record.argv0})")
        left += stop_pids({p: s for p, s in targets.items() if p != record.pid}, timeout=5.0,
                          what=f"{self.name}'s helpers")
        if not left:
            self.pid_file.unlink(missing_ok=True)
        return sorted(left)

    def recorded_pids(self) -> dict[int, int]:
        record = self.record()
        if record is None:
            return {}
        return {record.pid: record.started, **{int(p): s for p, s in record.helpers.items()}}

    def _write(self, record: ProcessRecord) -> None:
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record)))
        tmp.replace(self.pid_file)
