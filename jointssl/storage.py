"""Storage locations as fsspec URLs: ``/local/path``, ``file:///local/path``, ``s3://bucket/prefix``.

Configs hold only URLs. Where S3 lives and who we are there comes from the environment
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``), never from
config files or logs: the same config runs against the local platform's SeaweedFS, AWS or any
S3-compatible store by changing the environment alone.
"""

from __future__ import annotations

import logging
import os
import posixpath
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlparse

import fsspec

from jointssl.errors import JointsslError

if TYPE_CHECKING:
    import pyarrow.fs as pafs
    from rasterio.session import Session

SUPPORTED_SCHEMES = ("", "file", "s3")


def validate_url(url: str) -> str | None:
    """Return what is wrong with a storage URL, or None when it is usable."""
    if not isinstance(url, str) or not url.strip():
        return "expected a storage URL such as /data/jointssl, file:///data/jointssl or s3://bucket/prefix"
    parsed = urlparse(url)
    if parsed.scheme not in SUPPORTED_SCHEMES:
        return (
            f"URL scheme '{parsed.scheme}://' is not supported; use a local path, file:// or s3:// "
            f"(S3 endpoint and credentials come from AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
        )
    if parsed.scheme == "s3":
        if not parsed.netloc:
            return f"'{url}' names no bucket; write s3://BUCKET/prefix"
        if len(parsed.netloc) < 3:
            return f"bucket name '{parsed.netloc}' is too short (S3 bucket names have 3 to 63 characters)"
        if parsed.username or parsed.password:
            return "credentials do not belong in storage URLs; set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
    return None


def is_remote(url: str) -> bool:
    return urlparse(url).scheme == "s3"


def join(url: str, *parts: str) -> str:
    """Join path parts onto a URL without losing its scheme."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        return "s3://" + posixpath.join(parsed.netloc + parsed.path, *parts)
    if parsed.scheme == "file":
        return "file://" + posixpath.join(parsed.path, *parts)
    return os.path.join(url, *parts)


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for ``url`` and the path inside it."""
    problem = validate_url(url)
    if problem:
        raise ValueError(problem)
    fs, path = fsspec.core.url_to_fs(url, **_storage_options(url))
    return fs, path


def _storage_options(url: str) -> dict[str, object]:
    if not is_remote(url):
        return {}
    options: dict[str, object] = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    return options


def arrow_filesystem(url: str) -> tuple[pafs.FileSystem, str]:
    """``(pyarrow filesystem, path)`` for ``url`` (what Ray Data's read/write_parquet take), S3
    endpoint from the environment as everywhere else."""
    import pyarrow.fs as pafs

    parsed = urlparse(url)
    if parsed.scheme != "s3":
        return pafs.LocalFileSystem(), os.path.abspath(parsed.path if parsed.scheme == "file" else url)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    options: dict[str, object] = {"region": os.environ.get("AWS_REGION", "us-east-1")}
    if endpoint:
        ep = urlparse(endpoint)
        options.update(endpoint_override=ep.netloc or ep.path, scheme=ep.scheme or "http")
    return pafs.S3FileSystem(**options), parsed.netloc + parsed.path


def gdal_env() -> dict[str, str]:
    """GDAL configuration that points /vsis3/ at the same S3 endpoint boto3 and s3fs use.

    GDAL does not read ``AWS_ENDPOINT_URL``; it wants host:port in ``AWS_S3_ENDPOINT``, plain HTTP
    said explicitly, and path-style addressing for S3-compatible stores. Credentials stay in the
    process environment (GDAL refuses them as config options).

    ``GTIFF_SRS_SOURCE=GEOKEYS``: a GeoTIFF's CRS is built from its own GeoKeys instead of being looked
    up again in PROJ's EPSG database on every open, which was half of the CPU of opening a small COG
    (0.68 -> 0.40 ms per open on the 3,200-site world; the EPSG code stays the same, and the chip reads
    only compare it with the item's). Files whose GeoKeys contradict their EPSG code keep the GeoKeys.
    """
    env = {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "GTIFF_SRS_SOURCE": "GEOKEYS",
        "GDAL_HTTP_MAX_RETRY": "4",
        "GDAL_HTTP_RETRY_DELAY": "0.5",
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff",
        "GDAL_HTTP_MULTIRANGE": "YES",
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    }
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parsed = urlparse(endpoint)
        env["AWS_S3_ENDPOINT"] = parsed.netloc or parsed.path
        env["AWS_HTTPS"] = "YES" if parsed.scheme == "https" else "NO"
        env["AWS_VIRTUAL_HOSTING"] = "FALSE"
    return env


@contextmanager
def rasterio_env(**options: str) -> Iterator[None]:
    """A ``rasterio.Env`` in which ``s3://`` hrefs resolve against the configured endpoint (``options``:
    more GDAL configuration for this Env only).

    The Env is given this process's rasterio session for the credentials in the environment: left to
    itself, every ``rasterio.Env`` entered while ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` are set
    builds a new boto3 session and resolves credentials again, which cost ten times the CPU of a small
    window read (measured on the demo world with the platform's environment). Inside another one in the
    same thread, without ``options``, no new Env is entered: the settings are the same, and entering one
    costs about a quarter of a small window's read (a loop of reads holds one Env for all of them)."""
    depth: int = getattr(_ACTIVE, "depth", 0)
    if not options and depth:
        yield
        return
    import rasterio

    with rasterio.Env(session=rasterio_session(), **{**gdal_env(), **options}):
        _ACTIVE.depth = getattr(_ACTIVE, "depth", 0) + 1
        try:
            yield
        finally:
            _ACTIVE.depth -= 1


_ACTIVE = threading.local()
"""How many of this module's rasterio Envs the current thread is inside (rasterio's own are per thread)."""


_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                   "AWS_DEFAULT_REGION", "AWS_PROFILE")


def rasterio_session() -> Session:
    """One rasterio session per set of AWS credentials in the environment (as rasterio would build from
    it: AWS when both keys are set, else none); botocore refreshes temporary credentials itself."""
    return _session_for(tuple(os.environ.get(k) for k in _CREDENTIAL_ENV))


@lru_cache(maxsize=8)
def _session_for(credentials: tuple[str | None, ...]) -> Session:
    from rasterio.session import DummySession, Session

    key_id, secret = credentials[0], credentials[1]
    return Session.from_environ() if key_id and secret else DummySession()


T = TypeVar("T")
log = logging.getLogger("jointssl.storage")
STORE_PATIENCE_S = 60.0
"""How long a job waits for an object store that stopped answering (a restart, a failover) before it stops."""


def patiently(url: str, what: str, fn: Callable[[], T], patience_s: float = STORE_PATIENCE_S,
              first_wait_s: float = 0.5) -> T:
    """``fn()`` on the object store of ``url``, retried with doubling waits (``first_wait_s`` up to 8 s) for up
    to ``patience_s`` while the store does not answer (connection refused or reset, timeouts: what a restart
    looks like; botocore's own retries give up after ~8 s). A store that answers, even with 404 or 403, is
    not retried, and local paths are not retried at all. A store still silent after ``patience_s``: one
    JointsslError naming ``what``, the endpoint and the fix."""
    if not is_remote(url):
        return fn()
    from botocore.exceptions import BotoCoreError

    began, wait = time.monotonic(), first_wait_s
    while True:
        try:
            return fn()
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError):
            raise  # the store answered
        except (OSError, TimeoutError, BotoCoreError) as err:
            waited = time.monotonic() - began
            if waited + wait > patience_s:
                endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"
                raise JointsslError(
                    f"the object store ({endpoint}) did not answer for {waited:.0f} s while {what}: "
                    f"{type(err).__name__}: {err}",
                    hint="check that the S3 endpoint is up ('jointssl platform status' for the local one), then "
                         "re-run the same command: what was committed is kept") from err
            log.warning("object store not answering while %s (%s); retrying in %.1f s", what, type(err).__name__, wait)
            time.sleep(wait)
            wait = min(8.0, 2 * wait)

