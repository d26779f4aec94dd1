"""The embedded, zero-setup STAC API: ``rustac serve`` over STAC files, for as long as a block runs.

Every command searches STAC through pystac-client. When no STAC URL is configured, it serves its
collection JSON and item ndjson files with this context manager and searches that, so there is one
search path whether a platform runs or not. rustac's memory backend starts in ~0.1 s and supports
bbox, datetime, collections and paging; ``query``/``filter`` are silently ignored (filter such
properties on the client). A lone ``.parquet`` href would switch rustac to DuckDB, which tries to
download an extension and hangs offline, so only JSON and ndjson files are accepted.

    with serve_stac(["s2.json"], ["s2-items.ndjson"]) as url:
        items = pystac_client.Client.open(url).search(bbox=..., datetime=...).item_collection()
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from jointssl.errors import JointsslError
from jointssl.platform.process import LOOPBACK, executable, free_port, start_time, stop_pids

log = logging.getLogger(__name__)


@contextmanager
def serve_stac(
    collections: Sequence[str | Path],
    items: Sequence[str | Path] = (),
    port: int | None = None,
    timeout: float = 20.0,
) -> Iterator[str]:
    """Serve ``collections`` (STAC Collection JSON files) and ``items`` (ndjson files, one Item per
    line, each with its ``collection``) on 127.0.0.1; yield the API's root URL; stop it by PID."""
    hrefs = [Path(p).absolute() for p in [*collections, *items]]
    _validate(hrefs, n_collections=len(collections))
    binary = executable("rustac")
    if binary is None:
        raise JointsslError(
            "the embedded STAC API needs the 'rustac' executable",
            hint="re-run scripts/setup.sh, or pip install rustac into this environment",
        )
    port = port or free_port()
    url = f"http://{LOOPBACK}:{port}"
    expected = {json.loads(Path(p).read_text())["id"] for p in collections}
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(
            [binary, "serve", "--addr", f"{LOOPBACK}:{port}", *map(str, hrefs)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started = start_time(process.pid)
        try:
            _wait_ready(process, url, expected, timeout, out)
            log.debug("embedded STAC API (rustac, PID %d) at %s", process.pid, url)
            yield url
        finally:
            stop_pids({process.pid: started}, timeout=5.0)
            process.wait(timeout=5.0)


def _validate(hrefs: Sequence[Path], n_collections: int) -> None:
    if n_collections == 0:
        raise JointsslError("serve_stac needs at least one collection JSON file")
    for i, path in enumerate(hrefs):
        if not path.is_file():
            raise JointsslError(f"STAC file {path} does not exist")
        wanted = (".json",) if i < n_collections else (".ndjson", ".jsonl", ".json")
        if path.suffix not in wanted:
            raise JointsslError(
                f"{path}: the embedded STAC API takes {' or '.join(wanted)} files here",
                hint="convert stac-geoparquet to ndjson first (rustac would try DuckDB and hang offline)",
            )


def _wait_ready(process: subprocess.Popen[bytes], url: str, expected: set[str], timeout: float,
                out: IO[bytes]) -> None:
    """Until every collection is listed: rustac loads the files before serving, but say so plainly."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise JointsslError(f"rustac serve exited with status {process.returncode}:\n{_read(out)}")
        try:
            with urllib.request.urlopen(f"{url}/collections", timeout=2) as response:
                listed = {c["id"] for c in json.load(response).get("collections", [])}
            if expected <= listed:
                return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise JointsslError(f"rustac serve was not ready within {timeout:.0f} s:\n{_read(out)}")
        time.sleep(0.05)


def _read(out: IO[bytes]) -> str:
    out.flush()
    out.seek(0)
    text = out.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-30:]) or "(no output)"

