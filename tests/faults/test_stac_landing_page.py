"""A STAC landing page cut short (HTTP 200, half a JSON body) when a client opens the API: found by the chaos
run (jointssl/bench/chaos.py), where inference planner actors died of it in their constructor."""

from __future__ import annotations

import pytest

from jointssl.bench.chaos_proxy import StacFaultProxy
from jointssl.stac.client import open_client
from jointssl.stac.search import search_items
from tests.stac.test_client_faults import REQUEST, stac_url  # noqa: F401 - the module's rustac fixture

pytestmark = pytest.mark.services


@pytest.mark.faults(fault="STAC API returns a truncated landing page (HTTP 200) when the client opens it, twice",
                    expected="opening is retried with backoff; the search completes")
def test_a_truncated_landing_page_is_retried_when_opening(stac_url, record_property):  # noqa: F811 - stac_url is the imported fixture
    with StacFaultProxy(stac_url, [("truncate",), ("truncate",)]) as proxy:
        client, stats = open_client(proxy.url, max_retries=3, backoff_s=0.01)
        items = search_items(client, REQUEST, backoff_s=0.01, stats=stats)
    opened = [r[2] for r in proxy.requests if r[1] in ("", "/")]
    record_property("observed", f"landing page requests {opened}; search complete ({len(items)} items)")
    record_property("data_lost", "none")
    assert opened[:3] == ["truncated", "truncated", "pass"] and len(items) == 4
