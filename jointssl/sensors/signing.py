"""Href modifiers: functions ``href -> href`` applied to asset URLs just before they are read.

A modality names one by dotted path (``href_modifier`` in its preset), so catalogs that hand out
expiring signed URLs work without special cases in the loaders. Tokens are cached until shortly
before they expire, and requested again after that, so a job running for hours keeps reading.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from jointssl.errors import JointsslError

if TYPE_CHECKING:
    from jointssl.sensors.spec import Modality

HrefModifier = Callable[[str], str]

PC_TOKEN_ENDPOINT = "https://planetarycomputer.microsoft.com/api/sas/v1/token"
_REFRESH_MARGIN_S = 300.0
_FAILURE_MEMORY_S = 60.0
"""A failed token request is remembered this long: the chips that follow fail at once, with the same
message, instead of each asking the endpoint again."""
_pc_tokens: dict[tuple[str, str], tuple[str, float]] = {}
_pc_failures: dict[tuple[str, str], tuple[JointsslError, float]] = {}
_pc_lock = threading.Lock()


class SigningFailed(JointsslError):
    """The modality's href_modifier failed: not one bad chip but every chip of the collection, so it
    fails the batch with one message (naming the collection and the fix) instead of a skip per chip."""


def signer(modality: Modality, sign: Callable[[str], str]) -> Callable[[str], str]:
    """``sign`` whose failures become one :class:`SigningFailed` naming the collection and the fix."""

    def signed(href: str) -> str:
        try:
            return sign(href)
        except SigningFailed:
            raise
        except Exception as err:
            raise SigningFailed(
                f"signing the hrefs of {modality.collection} with {modality.href_modifier or sign!r} failed: {err}",
                hint="set index.href_modifier: none to read hrefs as they are (mirrors, local copies, public "
                "buckets), or name another function href -> href there; or restore network access to the signer",
            ) from None

    return signed


def resolve(dotted: str | None) -> HrefModifier:
    """The function a preset names, or the identity when it names none."""
    if dotted is None:
        return _identity
    module_name, _, attr = dotted.rpartition(".")
    try:
        func = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        raise JointsslError(
            f"href_modifier {dotted!r} cannot be imported",
            hint="name a function as package.module.function, importable where the job runs",
        ) from None
    if not callable(func):
        raise JointsslError(f"href_modifier {dotted!r} is not a function")
    modifier: HrefModifier = func
    return modifier


def planetary_computer(href: str) -> str:
    """Append a Planetary Computer SAS token to an Azure blob href (other hrefs pass unchanged)."""
    parsed = urlparse(href)
    if not parsed.netloc.endswith(".blob.core.windows.net") or "sig=" in (parsed.query or ""):
        return href
    account = parsed.netloc.split(".")[0]
    container = parsed.path.lstrip("/").split("/")[0]
    token = _pc_token(account, container)
    return f"{href}{'&' if parsed.query else '?'}{token}"


def _pc_token(account: str, container: str) -> str:
    import requests

    key = (account, container)
    with _pc_lock:
        cached = _pc_tokens.get(key)
        if cached and cached[1] - _REFRESH_MARGIN_S > time.time():
            return cached[0]
        failed = _pc_failures.get(key)
        if failed and time.time() - failed[1] < _FAILURE_MEMORY_S:
            raise failed[0]
        try:
            response = requests.get(f"{PC_TOKEN_ENDPOINT}/{account}/{container}", timeout=30)
            response.raise_for_status()
            body = response.json()
        except Exception as err:
            error = JointsslError(
                f"could not get a Planetary Computer SAS token for {account}/{container}: {err}",
                hint="check network access to the Planetary Computer, or set index.href_modifier: none",
            )
            _pc_failures[key] = (error, time.time())
            raise error from None
        expiry = datetime.fromisoformat(body["msft:expiry"].replace("Z", "+00:00")).timestamp()
        token: str = body["token"]
        _pc_tokens[key] = (token, expiry)
        return token


def _identity(href: str) -> str:
    return href
