"""One STAC item search: paged, retried when a page is broken, cached on disk, filtered on the client.

HTTP-level faults (429, 5xx, timeouts) are retried inside the session (:mod:`jointssl.stac.client`).
A page whose body is not valid JSON (a truncated response) gets through HTTP retries as a 200, so the
whole search is retried here, a bounded number of times with backoff. Results are cached as JSON keyed
by the request, so re-running an index job (or resuming one) does not query the API again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jointssl.errors import JointsslError
from jointssl.stac.items import Item, matches_query

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchRequest:
    collection: str
    bbox: tuple[float, float, float, float]
    """west, south, east, north in degrees (EPSG:4326)."""
    datetime: str | None = None
    """RFC 3339 interval 'start/end' (either side may be '..'), or null for all time."""
    query: dict[str, dict[str, Any]] | None = None
    page_size: int = 200

    def key(self) -> str:
        text = json.dumps(
            [self.collection, [round(v, 7) for v in self.bbox], self.datetime, self.query or {}], sort_keys=True
        )
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def search_items(
    client: Any,
    request: SearchRequest,
    cache_dir: Path | None = None,
    attempts: int = 4,
    backoff_s: float = 0.5,
    stats: Any = None,
) -> list[Item]:
    """Every item matching ``request``, as plain dicts, with client-side ``query`` filtering applied."""
    cached = _read_cache(cache_dir, request)
    if cached is not None:
        return cached
    from pystac import STACError

    last_error: Exception | None = None
    for attempt in range(attempts):
        try:
            items = _search_once(client, request)
            break
        except (json.JSONDecodeError, ValueError, KeyError, STACError) as err:  # a page that is not STAC JSON
            last_error = err
            log.warning("STAC search of %s returned a broken page (%s); retry %d", request.collection, err, attempt + 1)
            time.sleep(backoff_s * 2**attempt)
        except Exception as err:  # pystac-client wraps HTTP errors in APIError
            raise JointsslError(
                f"STAC search of {request.collection!r} failed: {type(err).__name__}: {err}",
                hint="check that the collection exists in this catalog (sensors preset) and the API is healthy",
            ) from None
    else:
        seen = f" (HTTP statuses seen: {stats.by_status})" if stats is not None else ""
        raise JointsslError(
            f"STAC search of {request.collection!r} failed after {attempts} attempts{seen}: {last_error}",
            hint="the API kept answering errors or broken (truncated, non-STAC) pages after every retry; "
            "check its health and logs, or retry later",
        )
    if request.query:
        items = [item for item in items if matches_query(item, request.query)]
    _write_cache(cache_dir, request, items)
    return items


def _search_once(client: Any, request: SearchRequest) -> list[Item]:
    kwargs: dict[str, Any] = {
        "collections": [request.collection],
        "bbox": list(request.bbox),
        "limit": request.page_size,
    }
    if request.datetime:
        kwargs["datetime"] = request.datetime
    if request.query and _conforms_to_query(client):
        kwargs["query"] = request.query  # server-side where supported; always re-checked on the client
    search = client.search(**kwargs)
    items: list[Item] = []
    for page in search.pages_as_dicts():
        items.extend(page.get("features", []))
    return items


def _conforms_to_query(client: Any) -> bool:
    from pystac_client.conformance import ConformanceClasses

    try:
        return bool(client.conforms_to(ConformanceClasses.QUERY))
    except Exception:  # a client without conformance info: filter on our side only
        return False


def _cache_path(cache_dir: Path, request: SearchRequest) -> Path:
    return cache_dir / request.collection / f"{request.key()}.json"


def _read_cache(cache_dir: Path | None, request: SearchRequest) -> list[Item] | None:
    if cache_dir is None:
        return None
    path = _cache_path(cache_dir, request)
    try:
        items: list[Item] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return items


def _write_cache(cache_dir: Path | None, request: SearchRequest, items: list[Item]) -> None:
    if cache_dir is None:
        return
    path = _cache_path(cache_dir, request)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(items))
    tmp.replace(path)  # atomic: a crash never leaves a half-written cache entry
