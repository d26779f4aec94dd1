"""Why a raster read failed, in the words the pipeline acts on: retry, skip, or stop.

GDAL's error text is the only evidence a failed read leaves, and it is not always true: a fetch that
failed while the object store was down can read "does not exist". :func:`diagnose` sorts a failure into
``transient`` (retry), ``permanent`` (a bad file: skip the chip) or ``store_ok`` (the object is there:
one uncached retry), asking the store itself when the text cannot be trusted; :func:`skip_reason` names
a permanent failure for the counted skips.
"""

from __future__ import annotations

from typing import Any, Literal

from jointssl import storage

TRANSIENT_TEXT = ("curl error", "could not connect", "couldn't connect", "connection", "timed out", "timeout",
                  "http error code: 5", "http response code: 5", "http response code: 429", "http error code: 429")


def diagnose(href: str, err: Exception) -> Literal["transient", "permanent", "store_ok"]:
    """Why a read of ``href`` failed. Local files: ``permanent`` (no retry). Remote: ``transient`` when
    the error says so (connection, timeout, 5xx). Otherwise GDAL's words cannot be trusted: a fetch
    that failed while the store was down reads "does not exist", and one that got HTTP 500s "not
    recognized as being in a supported file format". So the store itself is asked (S3): not answering
    is ``transient``, 404 is ``permanent`` (missing), and an object that is there is ``store_ok``: the
    error may be the file's, or GDAL's cached failure from an outage, so it earns one uncached try."""
    scheme = href.split("://", 1)[0].lower() if "://" in href else ""
    if scheme not in ("s3", "http", "https"):
        return "permanent"
    if any(word in str(err).lower() for word in TRANSIENT_TEXT):
        return "transient"
    if scheme != "s3":
        return "permanent"
    from botocore.exceptions import BotoCoreError

    try:
        fs, path = _probe_filesystem(href)
        fs.info(path, refresh=True)
    except (FileNotFoundError, PermissionError):  # 404, 403: the store answered
        return "permanent"
    except (OSError, TimeoutError, BotoCoreError):  # refused, reset, 5xx, timeout: the store is not answering
        return "transient"
    return "store_ok"


def _probe_filesystem(href: str) -> tuple[Any, str]:
    """The store's filesystem for a quick question: one attempt, short timeouts (botocore would
    otherwise retry a refused connection for ~8 s; the caller's loop does the retrying)."""
    import fsspec

    fs_and_path: tuple[Any, str] = fsspec.core.url_to_fs(
        href, **storage._storage_options(href),
        config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 2, "read_timeout": 5},
    )
    return fs_and_path


def vsi_path(href: str) -> str:
    """GDAL's name of ``href`` (s3://b/k -> /vsis3/b/k, http(s)://... -> /vsicurl/http(s)://...)."""
    if href.startswith("s3://"):
        return "/vsis3/" + href[len("s3://"):]
    if href.startswith(("http://", "https://")):
        return "/vsicurl/" + href
    return href


def skip_reason(err: Exception) -> str:
    text = str(err).lower()
    if ("404" in text or "no such file" in text or "does not exist" in text
            or ("not recognized" in text and "http" in text)):
        return "missing_file"
    if "not recognized as" in text or "tiff" in text or "corrupt" in text or "read failed" in text:
        return "corrupt_file"
    if "timed out" in text or "timeout" in text:
        return "timeout"
    return "read_error"
