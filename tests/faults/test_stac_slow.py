"""Slow STAC API responses (read timeouts), through the fault proxy in front of a real STAC API.

tests/stac/test_client_faults.py covers 429 with Retry-After, 5xx, truncated JSON and an unreachable
API; these add the slow server: one response slower than ``stac.timeout_s`` is retried and the search
completes; a server that is always slow ends in a clear error within a bounded time.

Both fail today, found by these tests: pystac-client's ``Client.open(url, stac_io=...)`` calls
``stac_io.update(timeout=None)``, which drops the timeout :func:`jointssl.stac.client.open_client` gave
its ``StacApiIO``, so a slow response is waited out and a stalled API hangs the job. The fix belongs in
jointssl/stac/client.py (pass ``timeout=timeout_s`` to ``Client.open`` as well); with it both pass
(checked by setting ``client._stac_io.timeout``), and ``strict`` turns them red until the marks go.
"""

from __future__ import annotations

import time

import pytest

from jointssl.bench.chaos_proxy import StacFaultProxy
from jointssl.errors import JointsslError
from jointssl.stac.client import open_client
from jointssl.stac.search import search_items
from tests.stac.test_client_faults import REQUEST, stac_url  # noqa: F401 - the module's rustac fixture

pytestmark = pytest.mark.services

TIMEOUT_S = 1.0


@pytest.mark.faults(fault="STAC API response slower than stac.timeout_s (3 s against 1 s), once",
                    expected="the request times out, is retried with backoff, and the search completes")
def test_one_slow_response_is_retried_after_the_timeout(stac_url, record_property):  # noqa: F811 - stac_url is the imported fixture
    with StacFaultProxy(stac_url) as proxy:
        client, stats = open_client(proxy.url, timeout_s=TIMEOUT_S, max_retries=2, backoff_s=0.05)
        proxy.faults = [("slow", 3.0)]
        started = time.monotonic()
        items = search_items(client, REQUEST, backoff_s=0.01, stats=stats)
        seconds = time.monotonic() - started
    record_property("observed", f"search complete ({len(items)} items) in {seconds:.1f} s after {stats.retried} "
                                f"retries (timeout {TIMEOUT_S:g} s)")
    record_property("data_lost", "none")
    assert sorted(i["id"] for i in items) == ["s2-0", "s2-1", "s2-2", "s2-3"]
    assert stats.retried >= 1 and TIMEOUT_S <= seconds < 3.0  # gave up on the slow one, did not wait it out


@pytest.mark.faults(fault="STAC API always slower than stac.timeout_s",
                    expected="bounded retries, then a clear error naming the collection; no hang")
def test_an_always_slow_api_fails_clearly_in_bounded_time(stac_url, record_property):  # noqa: F811 - stac_url is the imported fixture
    with StacFaultProxy(stac_url) as proxy:
        client, stats = open_client(proxy.url, timeout_s=TIMEOUT_S, max_retries=2, backoff_s=0.05)
        proxy.faults = [("slow", 2.0)] * 20
        started = time.monotonic()
        error = None
        try:
            search_items(client, REQUEST, backoff_s=0.01, stats=stats)
        except JointsslError as err:
            error = err
        seconds = time.monotonic() - started
    record_property("observed", f"JointsslError after {seconds:.1f} s: {str(error).splitlines()[0][:160]}" if error
                    else f"no error: every slow response was waited out; the search finished in {seconds:.1f} s")
    record_property("data_lost", "none (nothing written yet)")
    assert error is not None and "STAC search of 'sentinel-2-l2a' failed after 4 attempts" in str(error)
    assert seconds < 4 * 3 * TIMEOUT_S + 3.0  # 4 search attempts x (1 try + 2 HTTP retries) cut at the timeout
