"""Object storage stops answering during a read-heavy stage (chip reads from SeaweedFS S3).

The stage is the training/inference chip loader (:class:`jointssl.data.dataset.ChipBatchLoader`, what
each Ray Data loader actor runs) reading batch after batch of S2-like chips from a SeaweedFS of the
test's own. The store is killed (SIGKILL) once the stage is under way:

- back after a few seconds: the reads retry with backoff and the stage finishes with every chip equal
  to the same chip read from a local copy (nothing skipped, nothing lost);
- still down: the stage fails within a bounded time with :class:`StoreUnavailable`, a message naming
  the object and how to resume, and not a batch of silently skipped chips; what was written before
  (every object) is intact once the store is back.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jointssl import storage
from jointssl.data import window_read
from jointssl.data.dataset import ChipBatchLoader, site_table
from jointssl.data.window_read import StoreUnavailable
from tests.support.rasters import LAT, LON, s2_like

pytestmark = pytest.mark.services

BATCH = 4
OUTAGE_S = 3.0


def upload_sites(store_env: dict[str, str], local: Path, prefix: str, n: int):
    """``n`` sites, each with its own S2-like item (3 COGs) uploaded under s3://jointssl/<prefix>/:
    returns (modality, table reading S3, table reading the local copies)."""
    fs, _ = storage.filesystem(f"s3://jointssl/{prefix}")
    remote_items, local_items = [], []
    for i in range(n):
        folder = local / f"site{i:03d}"
        folder.mkdir(parents=True)
        modality, item = s2_like(folder, np.random.default_rng(i))
        item["id"] = f"s2-{prefix}-{i}"
        remote = json.loads(json.dumps(item))
        for key, asset in item["assets"].items():
            url = f"s3://jointssl/{prefix}/site{i:03d}/{key}.tif"
            fs.put_file(asset["href"], url[len("s3://"):])
            remote["assets"][key]["href"] = url
        remote_items.append(remote)
        local_items.append(item)
    # this test's own storage: its local copies and its prefix in the bucket (hrefs elsewhere are refused)
    modality = dataclasses.replace(modality, allowed_hrefs=[str(local), f"s3://jointssl/{prefix}"])
    return modality, table_of(modality, remote_items), table_of(modality, local_items)


def table_of(modality, items: list[dict]) -> pd.DataFrame:
    ids = [f"site{i:03d}" for i in range(len(items))]
    sites = pd.DataFrame({"site_id": ids, "lon": LON, "lat": LAT, "split": "unlabelled", "labels": [[]] * len(ids)})
    index = pd.DataFrame({"site_id": ids, "modality": modality.name, "status": "ok",
                          "item": [json.dumps(item) for item in items]})
    return site_table(index, sites, [modality])


def batches_of(table: pd.DataFrame) -> list[pd.DataFrame]:
    return [table.iloc[i:i + BATCH].reset_index(drop=True) for i in range(0, len(table), BATCH)]


@pytest.mark.faults(fault="SeaweedFS killed for 3 s during chip reads from S3 (read-heavy stage), then restarted",
                    expected="reads retry with backoff; the stage finishes with every chip, equal to a local read")
def test_chip_reads_ride_out_a_store_restart(dedicated_store, store_env, tmp_path, caplog, record_property):
    modality, remote, local = upload_sites(store_env, tmp_path, "restart", 16)
    reference = ChipBatchLoader([modality], threads=4)(local)
    loader = ChipBatchLoader([modality], threads=4)
    halfway, killed = threading.Event(), threading.Event()
    results, errors = [], []

    def stage() -> None:
        try:
            for k, batch in enumerate(batches_of(remote)):
                if k == 2:  # two batches read: now take the store away under the stage
                    halfway.set()
                    killed.wait(30)
                results.append(loader(batch))
        except Exception as err:  # reported by the test
            errors.append(err)

    caplog.set_level(logging.WARNING, logger="jointssl.data.window_read")
    started = time.monotonic()
    thread = threading.Thread(target=stage)
    thread.start()
    assert halfway.wait(60)
    down_at = dedicated_store.kill()
    killed.set()
    time.sleep(OUTAGE_S)
    restart_s = dedicated_store.start()
    thread.join(120)
    elapsed = time.monotonic() - started
    assert not thread.is_alive() and not errors, errors
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    pixels = np.concatenate([r["s2"] for r in results])
    present = np.concatenate([r["s2_present"] for r in results])
    reasons = sorted(set(np.concatenate([r["s2_reason"] for r in results])))
    record_property("observed", f"store down {OUTAGE_S + restart_s:.1f} s (killed, restarted in {restart_s:.1f} s); "
                                f"{len(retries)} window reads retried; {int(present.sum())}/{len(remote)} chips "
                                f"read, reasons {reasons}, stage {elapsed:.1f} s")
    record_property("data_lost", f"{len(remote) - int(present.sum())} chips")
    assert present.all(), reasons
    np.testing.assert_array_equal(pixels, reference["s2"])
    assert retries, "no read failed: the outage missed the stage"
    assert time.monotonic() - down_at < 60


@pytest.mark.faults(fault="SeaweedFS killed during chip reads from S3 and left down",
                    expected="the stage fails within a bounded time with a clear error naming the object and how "
                             "to resume (not silently skipped chips); everything written before is intact")
def test_a_store_that_stays_down_fails_clearly_and_loses_nothing(dedicated_store, store_env, tmp_path, monkeypatch,
                                                                 record_property):
    modality, remote, local = upload_sites(store_env, tmp_path, "down", 8)
    monkeypatch.setattr(window_read, "READ_ATTEMPTS", 3)  # the same loop, shorter: 0.2 + 0.4 s of waits
    monkeypatch.setattr(window_read, "READ_BACKOFF_S", 0.2)
    loader = ChipBatchLoader([modality], threads=4)
    first, second = batches_of(remote)[:2]
    before = loader(first)
    assert before["s2_present"].all()
    dedicated_store.kill()
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as info:
            loader(second)
        seconds = time.monotonic() - started
    finally:
        dedicated_store.start()
    message = str(info.value)
    assert "object storage did not answer a read of s3://jointssl/down/site00" in message
    assert "after 3 tries" in message and "re-run the same command" in message
    assert seconds < 30
    # nothing written before the outage is lost: every object is back, byte for byte
    fs, _ = storage.filesystem("s3://jointssl/down")
    lost = 0
    for path in sorted(tmp_path.glob("site*/*.tif")):
        key = f"jointssl/down/{path.parent.name}/{path.name}"
        lost += int(not fs.exists(key) or fs.cat_file(key) != path.read_bytes())
    after = ChipBatchLoader([modality], threads=4)(remote)
    np.testing.assert_array_equal(after["s2"][:BATCH], before["s2"])
    np.testing.assert_array_equal(after["s2"], ChipBatchLoader([modality])(local)["s2"])
    record_property("observed", f"StoreUnavailable after {seconds:.1f} s (3 tries): "
                                f"{message.splitlines()[0][:150]}...; after the restart all "
                                f"{len(list(tmp_path.glob('site*/*.tif')))} objects were intact and every chip read")
    record_property("data_lost", f"{lost} objects")
    assert lost == 0


@pytest.mark.faults(fault="an object missing from S3 (404) while the store is up",
                    expected="a counted skip 'missing_file' at once: no retries, the batch goes on")
def test_a_missing_object_is_a_counted_skip_without_retries(dedicated_store, store_env, tmp_path, caplog,
                                                            record_property):
    modality, remote, _ = upload_sites(store_env, tmp_path, "missing", 2)
    item = json.loads(remote.loc[1, "s2_item"])
    item["assets"]["B11"]["href"] = item["assets"]["B11"]["href"].replace("B11.tif", "gone.tif")
    remote.loc[1, "s2_item"] = json.dumps(item)
    caplog.set_level(logging.WARNING, logger="jointssl.data.window_read")
    started = time.monotonic()
    batch = ChipBatchLoader([modality], threads=4)(remote)
    seconds = time.monotonic() - started
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    record_property("observed", f"reasons {list(batch['s2_reason'])} in {seconds:.1f} s, {len(retries)} retries")
    record_property("data_lost", "none (the missing chip is counted)")
    assert list(batch["s2_reason"]) == ["ok", "missing_file"] and not retries
