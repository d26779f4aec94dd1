"""Where a collection's asset hrefs may point, checked before anything is opened.

A STAC item can come from a catalog the user does not control, and GDAL opens its asset hrefs with the
job's credentials: ``file:///etc/passwd``, ``http://169.254.169.254/...`` (cloud metadata) or another
bucket must never be read. Each modality carries ``allowed_hrefs`` (data in its preset, per STAC collection:
the catalog's own storage), to which :func:`jointssl.data.pipeline.preset_of` adds the configured storage
root and world location; ``index.allowed_hrefs`` replaces the preset's list. An href outside every prefix
is a counted skip ``href_not_allowed`` naming the item (:func:`checked_href`).

A prefix is ``scheme://host[:port][/path]`` (``*`` in the host matches within one DNS label:
``https://*.blob.core.windows.net/naip``), or an absolute local path / ``file://`` URL. Local hrefs are
resolved (symlinks, ``..``) before they are compared, so a link cannot leave an allowed root; remote hrefs
with ``.`` or ``..`` path segments, user info, or GDAL virtual paths (``/vsicurl/...``) are never allowed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from jointssl.stac.items import UnusableItem, asset_href

if TYPE_CHECKING:
    from jointssl.sensors.spec import Modality

HREF_NOT_ALLOWED = "href_not_allowed"
LOCAL = "file"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class HrefPrefix:
    """One allowed place: a scheme, a host pattern and a path prefix (local: a resolved directory)."""

    scheme: str
    """Lower case: 's3', 'https', 'gs', ...; 'file' for local paths."""
    host: re.Pattern[str] | None
    """Compiled host pattern (None for local paths)."""
    port: int | None
    path: str
    """Path prefix without a trailing slash ('' allows the whole host); local: the resolved root."""

    def allows(self, scheme: str, host: str, port: int | None, path: str) -> bool:
        if scheme != self.scheme or (self.host is not None and not self.host.fullmatch(host)):
            return False
        if self.port is not None and port != self.port:
            return False
        return path == self.path or path.startswith(self.path + "/") or self.path in ("", "/")


@lru_cache(maxsize=256)
def parse_prefix(text: str) -> HrefPrefix:
    """An allowed-href entry; ValueError saying what is wrong with it."""
    if not isinstance(text, str) or not text.strip() or _CONTROL.search(text):
        raise ValueError(f"{text!r} is not a prefix: give scheme://host[/path] or an absolute local path")
    if text.startswith("/vsi"):
        raise ValueError(f"{text!r}: GDAL virtual paths are not prefixes; give the URL (s3://, https://)")
    try:
        parts = urlsplit(text)
        parts.hostname  # noqa: B018 - raises for an unclosed IPv6 bracket
    except ValueError as err:
        raise ValueError(f"{text!r} is not a URL: {err}") from None
    if parts.scheme in ("", LOCAL):
        path = unquote(parts.path) if parts.scheme == LOCAL else text
        if parts.scheme == LOCAL and parts.netloc not in ("", "localhost"):
            raise ValueError(f"{text!r}: a file:// prefix names no host")
        if not os.path.isabs(path):
            raise ValueError(f"{text!r}: a local prefix must be an absolute path")
        return HrefPrefix(LOCAL, None, None, os.path.realpath(path))
    if not parts.netloc or parts.username is not None or parts.query or parts.fragment:
        raise ValueError(f"{text!r}: give scheme://host[:port][/path], without user info, query or fragment")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r}: the port is not a number") from None
    host = (parts.hostname or "").lower()
    if not host or not re.fullmatch(r"[a-z0-9*._-]+", host):
        raise ValueError(f"{text!r}: {host!r} is not a host name (letters, digits, '-', '.', '*')")
    pattern = re.compile(".".join(re.escape(label).replace(r"\*", "[^.]*") for label in host.split(".")))
    path = unquote(parts.path).rstrip("/")
    if _dot_segments(path):
        raise ValueError(f"{text!r}: '.' and '..' segments are not allowed in a prefix")
    return HrefPrefix(parts.scheme.lower(), pattern, port, path)


def href_problem(href: str, allowed: Sequence[str]) -> str | None:
    """Why ``href`` may not be opened under the ``allowed`` prefixes, or None when it may."""
    if not href or _CONTROL.search(href):
        return "it is empty or holds control characters"
    if href.startswith("/vsi"):
        return "GDAL virtual paths are never allowed"
    try:
        parts = urlsplit(href)
        host = (parts.hostname or "").lower()
    except ValueError as err:  # e.g. an unclosed IPv6 bracket
        return f"not a URL ({err})"
    scheme = parts.scheme.lower()
    if scheme in ("", LOCAL):
        if scheme == LOCAL and parts.netloc not in ("", "localhost"):
            return "a file:// URL with a host"
        target = os.path.realpath(unquote(parts.path) if scheme == LOCAL else href)
        return None if _any_allows(allowed, LOCAL, "", None, target) else "outside every allowed root"
    if parts.username is not None or parts.password is not None:
        return "URLs with user info are never allowed"
    try:
        port = parts.port
    except ValueError:
        return "the port is not a number"
    path = unquote(parts.path)
    if _dot_segments(path):
        return "'.' or '..' path segments"
    if _any_allows(allowed, scheme, host, port, path):
        return None
    return f"{scheme}://{host} is not an allowed location"


def checked_href(item: dict[str, Any], modality: Modality, key: str) -> str:
    """The href of asset ``key`` as the catalog gives it (before any signing), or
    :class:`UnusableItem` ``href_not_allowed`` naming the item, the asset and the fix."""
    href = asset_href(item, key)
    problem = href_problem(href, modality.allowed_hrefs)
    if problem is None:
        return href
    shown = href if len(href) <= 200 else href[:200] + "..."
    raise UnusableItem(
        HREF_NOT_ALLOWED,
        f"item {item.get('id')} asset {key!r} href {shown!r} is not read ({problem}); {modality.collection} "
        f"reads from: {', '.join(modality.allowed_hrefs) or 'nowhere'} (preset allowed_hrefs, "
        "index.allowed_hrefs, storage.root, the world)")


def _any_allows(allowed: Sequence[str], scheme: str, host: str, port: int | None, path: str) -> bool:
    for text in allowed:
        try:
            prefix = parse_prefix(text)
        except ValueError:
            continue  # validated where the list was loaded; a bad entry allows nothing
        if prefix.allows(scheme, host, port, path):
            return True
    return False


def _dot_segments(path: str) -> bool:
    return any(segment in (".", "..") for segment in path.replace("\\", "/").split("/"))
