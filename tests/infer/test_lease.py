"""One incremental run per area: the lease (local O_EXCL and SeaweedFS conditional PUTs) and the watermark."""

from __future__ import annotations

import shutil
import threading
from datetime import datetime, timedelta, timezone

import pytest

from jointssl.infer.lease import LeaseHeld, _store, acquire, area_lease, lease_url, release
from jointssl.infer.watermark import advance_watermark, read_watermark, watermark_url

NOW = datetime(2026, 1, 1, 3, 0, tzinfo=timezone.utc)


def race(url: str, n: int = 8) -> list[str]:
    """``n`` threads take the lease at once: the holders that won."""
    won: list[str] = []
    failed: list[BaseException] = []
    barrier = threading.Barrier(n)

    def take(i: int) -> None:
        barrier.wait()
        try:
            won.append(acquire(url, "area", 60, f"run-{i}").holder)
        except LeaseHeld:
            pass
        except BaseException as err:  # any other outcome is a bug: reported below
            failed.append(err)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failed, f"a racing run failed instead of being told who holds the lease: {failed[0]!r}"
    return won


def check_lease(url: str) -> None:
    first = acquire(url, "area", 3600, "night-run", now=NOW)
    with pytest.raises(LeaseHeld, match="processed by night-run .*held until 2026-01-01T04:00:00Z") as held:
        acquire(url, "area", 3600, "next-tick", now=NOW + timedelta(minutes=30))
    assert held.value.lease == first
    later = acquire(url, "area", 3600, "after-expiry", now=NOW + timedelta(hours=2))  # the holder died
    assert later.holder == "after-expiry"
    release(url, first)  # a holder that lost its lease does not delete the new one
    with pytest.raises(LeaseHeld, match="after-expiry"):
        acquire(url, "area", 3600, "another", now=NOW + timedelta(hours=2))
    store = _store(url)
    _, tag = store.read()
    assert not store.replace(f"{tag}0", b"{}")  # a takeover of a lease that changed since it was read fails
    assert store.read()[0] == later
    release(url, later)
    assert len(race(url)) == 1


def test_a_local_lease_lets_one_run_in_and_expires(tmp_path):
    check_lease(lease_url(str(tmp_path / "_watermarks"), "area"))


def test_the_lease_is_released_when_the_run_fails(tmp_path):
    url = lease_url(str(tmp_path), "area")
    with pytest.raises(RuntimeError), area_lease(url, "area"):
        raise RuntimeError("the run failed")
    with area_lease(url, "area") as lease:
        assert lease.holder


def test_the_watermark_never_moves_backwards(tmp_path):
    url = watermark_url(str(tmp_path), "area")
    assert advance_watermark(url, "area", "2023-06-01T10:00:00.000000Z", "run-a", "m/1").newest.startswith("2023-06")
    kept = advance_watermark(url, "area", "2023-05-01T10:00:00.000000Z", "run-b", "m/1")
    assert kept.run == "run-a" and read_watermark(url).newest == "2023-06-01T10:00:00.000000Z"
    assert advance_watermark(url, "area", None, "run-c", "m/1").run == "run-a"
    assert advance_watermark(url, "area", "2023-07-01T00:00:00.000000Z", "run-d", "m/1").run == "run-d"


@pytest.fixture(scope="module")
def seaweedfs():
    from jointssl.platform import stack
    from jointssl.platform.settings import PlatformSettings
    from tests.conftest import make_home, pick_ports

    home = make_home("jointssl-lease-s3-")
    settings = PlatformSettings(home=home, ports=pick_ports())
    try:
        stack.up(settings, only=("seaweedfs",))
        from jointssl.platform import credentials

        yield stack.build_services(settings, credentials.load(home))["seaweedfs"].client_env()
    finally:
        left = stack.down(home)
        shutil.rmtree(home, ignore_errors=True)
        assert not left, f"SeaweedFS processes left running: {left}"


@pytest.mark.services
@pytest.mark.faults(fault="two incremental runs of one area at once (a slow night and the next CronJob tick)",
                    expected="one takes the area's lease (conditional PUT on S3); the other exits 0 naming the "
                             "holder and until when; an expired lease is taken over by exactly one run")
def test_an_s3_lease_is_created_atomically_on_seaweedfs(seaweedfs, monkeypatch, record_property):
    for key in ("AWS_ENDPOINT_URL_S3",):
        monkeypatch.delenv(key, raising=False)
    for key, value in seaweedfs.items():
        monkeypatch.setenv(key, value)
    url = lease_url("s3://jointssl/lease-test/_watermarks", "area")
    check_lease(url)
    record_property("observed", "SeaweedFS refused the second create (If-None-Match: *) with 412 and the stale "
                                "takeover (If-Match) after a new holder; 8 simultaneous runs: 1 took the lease")
    record_property("data_lost", "none (the second run writes nothing)")


def test_a_second_incremental_run_of_the_area_returns_saying_who_holds_it(tmp_path):
    from jointssl.config import load_job_config
    from jointssl.infer.area import load_area
    from jointssl.infer.lease import run_leased
    from jointssl.infer.watermark import watermarks_root

    config = load_job_config(None, ["--storage.root", str(tmp_path), "--infer.bbox", "[-100.1, 35.0, -100.0, 35.1]",
                                    "--infer.incremental", "true"])
    inner: list[dict] = []

    def nested(c):  # the slow night's run, during which the next tick starts
        inner.append(run_leased(c, lambda _: {"status": "ran"}))
        return {"status": "ran"}

    assert run_leased(config, nested) == {"status": "ran"}
    (held,) = inner
    assert held["status"] == "skipped" and "is being processed by" in held["reason"]
    assert held["lease"]["url"] == lease_url(watermarks_root(config), load_area(config.infer).key)
    assert run_leased(config, lambda _: {"status": "ran"}) == {"status": "ran"}  # released after the first
