"""A pystac-client ``Client`` that survives real APIs: bounded retries with backoff, and counted requests.

Transient failures (429 with or without ``Retry-After``, 5xx, connection errors, timeouts) are retried
by urllib3 inside the HTTP session with exponential backoff; a body that is not valid JSON (a truncated
page) is retried by :func:`jointssl.stac.search.search_items`. Every HTTP request is counted, so jobs
can report STAC requests per 1,000 sites.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jointssl.errors import JointsslError

if TYPE_CHECKING:
    from pystac_client import Client

log = logging.getLogger(__name__)

RETRY_STATUSES = (429, 500, 502, 503, 504)


@dataclass
class RequestStats:
    """HTTP traffic to one STAC API: answered requests, and the extra attempts retries cost."""

    requests: int = 0
    retried: int = 0
    by_status: dict[int, int] = field(default_factory=dict)

    @property
    def attempts(self) -> int:
        return self.requests + self.retried

    def hook(self, response: Any, *args: Any, **kwargs: Any) -> Any:  # requests response hook signature
        self.requests += 1
        self.by_status[response.status_code] = self.by_status.get(response.status_code, 0) + 1
        return response


def open_client(url: str, timeout_s: float = 30.0, max_retries: int = 5,
                backoff_s: float = 0.5) -> tuple[Client, RequestStats]:
    """Open the STAC API at ``url``: returns ``(client, stats)``.

    Raises a :class:`JointsslError` that names the URL when the API cannot be reached or is not a
    STAC API (after the retries).
    """
    from pystac_client import Client
    from pystac_client.stac_api_io import StacApiIO

    stats = RequestStats()
    retry = _CountingRetry(
        total=max_retries,
        connect=max_retries,
        read=max_retries,
        status=max_retries,
        backoff_factor=backoff_s,
        backoff_max=30.0,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "POST"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    retry.stats = stats
    stac_io = StacApiIO(timeout=timeout_s, max_retries=retry)
    stac_io.session.hooks["response"].append(stats.hook)
    try:
        client = _open_retrying_bad_json(Client, url, stac_io, timeout_s, max_retries, backoff_s)
    except Exception as err:  # pystac-client raises several types for one meaning
        raise JointsslError(
            f"cannot open the STAC API at {url}: {type(err).__name__}: {err}",
            hint="check stac.url / JOINTSSL_STAC_URL, that the server is up ('jointssl platform status'), "
            "and that it answers GET / with a STAC landing page",
        ) from None
    return client, stats


def _open_retrying_bad_json(client_type: Any, url: str, stac_io: Any, timeout_s: float, max_retries: int,
                            backoff_s: float) -> Client:
    """``Client.open``, tried again (with backoff) when the landing page is not valid JSON: a page cut short
    by a proxy or a restarting server answers 200 too (found by the chaos run: planner actors died of it)."""
    import json
    import time

    for attempt in range(max_retries + 1):
        try:
            # timeout= as well: open() resets stac_io.timeout otherwise
            client: Client = client_type.open(url, stac_io=stac_io, timeout=timeout_s)
            return client
        except json.JSONDecodeError:
            if attempt == max_retries:
                raise
            time.sleep(min(backoff_s * 2**attempt, 30.0))
    raise AssertionError("unreachable")  # the loop returns or raises


try:
    from urllib3 import Retry as _Retry
except ImportError:  # pragma: no cover - urllib3 is a dependency of requests
    _Retry = object  # type: ignore[assignment,misc]  # a stand-in class where mypy sees urllib3's Retry


class _CountingRetry(_Retry):
    """urllib3 ``Retry`` that tells :class:`RequestStats` each time it retries."""

    stats: RequestStats | None = None

    def increment(self, *args: Any, **kwargs: Any) -> _CountingRetry:
        new = super().increment(*args, **kwargs)
        new.stats = self.stats
        if self.stats is not None:
            self.stats.retried += 1
            response = kwargs.get("response")
            status = getattr(response, "status", None)
            log.warning("STAC request retried (%s); %s retries left", status or kwargs.get("error"), new.total)
        return new

    def new(self, **kwargs: Any) -> _CountingRetry:
        new = super().new(**kwargs)
        new.stats = self.stats
        return new
