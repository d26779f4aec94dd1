"""jointssl.storage: GDAL/rasterio environment for object storage, built from the process environment."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.session import AWSSession, DummySession, Session
from rasterio.transform import from_origin

from jointssl import storage


@pytest.fixture()
def fresh_sessions():
    storage._session_for.cache_clear()
    yield
    storage._session_for.cache_clear()


def test_one_rasterio_session_per_credentials_not_per_env(monkeypatch, fresh_sessions, tmp_path):
    path = tmp_path / "a.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8", crs="EPSG:32615",
                       transform=from_origin(500000, 4000000, 10, 10)) as dst:
        dst.write(np.arange(16, dtype=np.uint8).reshape(1, 4, 4))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    built = []
    real = Session.from_environ

    def counting(*args, **kwargs):
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(Session, "from_environ", counting)
    for _ in range(5):  # as five window reads would
        with storage.rasterio_env(CPL_VSIL_CURL_NON_CACHED="/vsis3/b/k.tif"), rasterio.open(path) as src:
            assert src.read(1)[3, 3] == 15
    assert len(built) == 1  # rasterio alone builds a boto3 session for every Env it enters
    assert isinstance(storage.rasterio_session(), AWSSession)
    first = storage.rasterio_session()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "other")
    assert storage.rasterio_session() is not first and len(built) == 2  # new credentials, new session
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    assert isinstance(storage.rasterio_session(), DummySession)


def test_a_nested_env_without_options_reuses_the_thread_s_env(tmp_path):
    from rasterio.env import getenv

    with storage.rasterio_env():
        outer = getenv()
        with storage.rasterio_env():
            assert getenv() == outer  # same settings, no Env entered
        with storage.rasterio_env(CPL_VSIL_CURL_NON_CACHED="/vsis3/b/k.tif"):
            assert getenv()["CPL_VSIL_CURL_NON_CACHED"] == "/vsis3/b/k.tif"  # options: an Env of its own
        assert "CPL_VSIL_CURL_NON_CACHED" not in getenv()
    assert storage._ACTIVE.depth == 0


def test_patiently_waits_for_a_store_that_restarts_and_not_for_one_that_answers():
    from botocore.exceptions import EndpointConnectionError

    from jointssl.errors import JointsslError
    from jointssl.storage import patiently

    calls = []

    def restarting() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        return "ok"

    assert patiently("s3://b/k", "reading s3://b/k", restarting, first_wait_s=0.01) == "ok" and len(calls) == 3

    def missing() -> None:
        calls.append(1)
        raise FileNotFoundError("s3://b/k")

    calls.clear()
    with pytest.raises(FileNotFoundError):  # the store answered: no retry
        patiently("s3://b/k", "reading s3://b/k", missing, first_wait_s=0.01)
    assert len(calls) == 1

    def down() -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(JointsslError, match=r"did not answer for \d+ s while reading s3://b/k.*ConnectionRefused"):
        patiently("s3://b/k", "reading s3://b/k", down, patience_s=0.05, first_wait_s=0.01)
    calls.clear()
    with pytest.raises(ConnectionRefusedError):  # a local path is never retried
        patiently("/tmp/x", "reading /tmp/x", down)
