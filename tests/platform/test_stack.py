"""The whole platform through its real servers: S3, pgstac + STAC API, MLflow, Ray; up/status/down."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid

import pytest

from jointssl.cli import main
from jointssl.errors import JointsslError
from tests.conftest import make_home, pick_ports, require_ray

services = pytest.mark.services


def _job_env(platform, drop_s3: bool = False) -> dict[str, str]:
    """This process's environment plus the platform's, as ``eval "$(jointssl platform env)"`` gives."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_", "MLFLOW_"))}
    env.update(platform.env())
    if drop_s3:
        env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    return env


def _python(code: str, env: dict[str, str], timeout: float = 180) -> str:
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.parametrize("action", ["up", "status", "down", "env"])
def test_every_subcommand_has_help(action, capsys):
    with pytest.raises(SystemExit) as info:
        main(["platform", action, "--help"])
    assert info.value.code == 0
    assert "--home" in capsys.readouterr().out


@services
def test_s3_write_read_and_wrong_keys_rejected(platform):
    import s3fs

    env = platform.env()
    fs = s3fs.S3FileSystem(
        key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
        endpoint_url=env["AWS_ENDPOINT_URL"], client_kwargs={"region_name": env["AWS_REGION"]},
    )
    path = f"jointssl/tests/{uuid.uuid4().hex}.txt"
    fs.pipe(path, b"hello seaweedfs")
    assert fs.cat(path) == b"hello seaweedfs"
    assert fs.exists("mlflow")
    intruder = s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"], secret="wrong", endpoint_url=env["AWS_ENDPOINT_URL"])
    with pytest.raises((PermissionError, OSError)):
        intruder.cat(path)


@services
def test_pypgstac_load_then_pystac_client_search(platform, tmp_path):
    import pystac_client
    from pypgstac.db import PgstacDB
    from pypgstac.load import Loader, Methods

    cid = f"toy-{uuid.uuid4().hex[:8]}"
    collection = {
        "type": "Collection", "stac_version": "1.0.0", "id": cid, "description": "test", "license": "proprietary",
        "links": [], "extent": {"spatial": {"bbox": [[5.0, 45.0, 6.0, 46.0]]},
                                "temporal": {"interval": [["2022-06-01T00:00:00Z", "2022-06-30T00:00:00Z"]]}},
    }
    item = {
        "type": "Feature", "stac_version": "1.0.0", "id": f"{cid}-a", "collection": cid,
        "geometry": {"type": "Polygon",
                     "coordinates": [[[5.0, 45.0], [6.0, 45.0], [6.0, 46.0], [5.0, 46.0], [5.0, 45.0]]]},
        "bbox": [5.0, 45.0, 6.0, 46.0], "properties": {"datetime": "2022-06-15T10:30:00Z"}, "links": [],
        "assets": {"data": {"href": "s3://jointssl/toy/a.tif", "type": "image/tiff; application=geotiff"}},
    }
    (tmp_path / "collection.json").write_text(json.dumps(collection))
    (tmp_path / "items.ndjson").write_text(json.dumps(item) + "\n")
    with PgstacDB(dsn=platform.env()["JOINTSSL_PGSTAC_DSN"]) as db:
        loader = Loader(db)
        loader.load_collections(str(tmp_path / "collection.json"), Methods.upsert)
        loader.load_items(str(tmp_path / "items.ndjson"), Methods.upsert)

    client = pystac_client.Client.open(platform.env()["JOINTSSL_STAC_URL"])
    hit = client.search(collections=[cid], bbox=[5.4, 45.4, 5.6, 45.6], datetime="2022-06-10/2022-06-20")
    assert [i.id for i in hit.items()] == [f"{cid}-a"]
    assert not list(client.search(collections=[cid], bbox=[50, 10, 51, 11]).items())
    assert not list(client.search(collections=[cid], datetime="2023-01-01/2023-02-01").items())


@services
def test_mlflow_run_with_artifact_through_the_server(platform):
    """The client has no S3 keys: the server proxies artifacts into the SeaweedFS bucket."""
    code = """
import json, pathlib, tempfile, mlflow
mlflow.set_experiment("platform-test")
with mlflow.start_run() as run:
    mlflow.log_param("lr", 0.01)
    mlflow.log_metric("loss", 0.5, step=1)
    mlflow.log_text("hello artifact", "notes/hello.txt")
client = mlflow.MlflowClient()
got = client.get_run(run.info.run_id)
out = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="notes/hello.txt",
                                         dst_path=tempfile.mkdtemp())
print(json.dumps({"run_id": run.info.run_id, "params": got.data.params, "metrics": got.data.metrics,
                  "artifact": pathlib.Path(out).read_text()}))
"""
    result = json.loads(_python(code, _job_env(platform, drop_s3=True)).strip().splitlines()[-1])
    assert result["params"] == {"lr": "0.01"}
    assert result["metrics"] == {"loss": 0.5}
    assert result["artifact"] == "hello artifact"

    import s3fs

    env = platform.env()
    fs = s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
                           endpoint_url=env["AWS_ENDPOINT_URL"])
    stored = fs.find("mlflow/artifacts")
    assert any(result["run_id"] in key and key.endswith("notes/hello.txt") for key in stored)


@services
def test_ray_task_on_the_head(platform):
    require_ray()
    code = """
import os, ray
ray.init(address=os.environ["JOINTSSL_RAY_GCS_ADDRESS"], log_to_driver=False)
@ray.remote
def double(x):
    return 2 * x
print("result", ray.get(double.remote(21)))
"""
    assert "result 42" in _python(code, _job_env(platform))


@services
def test_ray_job_submit(platform, tmp_path):
    require_ray()
    ray = os.path.join(os.path.dirname(sys.executable), "ray")
    done = subprocess.run(
        [ray, "job", "submit", "--", "python", "-c", "print('hello from a ray job')"],
        env=_job_env(platform), cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "hello from a ray job" in output and "succeeded" in output


@services
def test_status_is_healthy(platform, capsys):
    code = main(["platform", "status", "--home", str(platform.home)])
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    for name in platform.services:
        assert " healthy " in lines[name], lines[name]
    # Outside the loopback namespace the session starts no Ray: status rightly reports it down.
    assert code == (0 if platform.has_ray else 1)


@services
def test_env_prints_exports_for_a_shell(platform, capsys):
    assert main(["platform", "env", "--home", str(platform.home)]) == 0
    lines = capsys.readouterr().out.splitlines()
    keys = {line.split("=", 1)[0].removeprefix("export ") for line in lines}
    assert {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "JOINTSSL_STAC_URL",
            "JOINTSSL_PGSTAC_DSN", "MLFLOW_TRACKING_URI", "RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"} <= keys


@services
def test_up_twice_is_harmless(platform):
    from jointssl.platform import stack

    before = {s.name: s.pid for s in stack.status(platform.home)}
    result = stack.up(platform.settings, only=platform.services)
    assert result.started == {} and sorted(result.reused) == sorted(platform.services)
    assert {s.name: s.pid for s in stack.status(platform.home)} == before


@services
def test_port_in_use_names_port_and_service(capsys):
    home = make_home()
    ports = pick_ports()
    try:
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", ports.postgres))
            squatter.listen()
            argv = ["platform", "up", "--home", str(home), "--only", "postgres", "--postgres-port", str(ports.postgres)]
            assert main(argv) == 1
        err = capsys.readouterr().err
        assert f"port {ports.postgres}" in err and "postgres" in err and "already in use" in err
        assert not list(home.glob("run/*.json"))
    finally:
        shutil.rmtree(home, ignore_errors=True)


@services
def test_failed_health_check_shows_log_and_stops_what_up_started(monkeypatch):
    from jointssl.platform import stack
    from jointssl.platform.postgres import Postgres
    from jointssl.platform.settings import PlatformSettings

    monkeypatch.setattr(Postgres, "healthy", lambda self: False)
    monkeypatch.setattr(Postgres, "start_timeout", 3.0)
    home = make_home()
    settings = PlatformSettings(home=home, ports=pick_ports())
    try:
        with pytest.raises(JointsslError) as info:
            stack.up(settings, only=["seaweedfs", "postgres"])
        message = str(info.value)
        assert "postgres" in message and "did not become healthy" in message
        assert "database system is ready" in message  # the tail of PostgreSQL's own log
        assert "stopped what this 'up' started" in message
        assert not list((home / "run").glob("*.json"))
        assert all(s.pid is None for s in stack.status(home))
    finally:
        leftovers = stack.down(home)
        shutil.rmtree(home, ignore_errors=True)
        assert not leftovers


@services
def test_down_leaves_no_recorded_pid_alive():
    from jointssl.platform import stack
    from jointssl.platform.process import is_alive
    from jointssl.platform.settings import PlatformSettings

    home = make_home()
    settings = PlatformSettings(home=home, ports=pick_ports())
    try:
        stack.up(settings, only=["seaweedfs", "postgres"])
        recorded = {}
        for service in stack.build_services(settings, None).values():
            recorded.update(service.process.recorded_pids())
        assert len(recorded) >= 2
        assert main(["platform", "down", "--home", str(home)]) == 0
        assert not [p for p, s in recorded.items() if is_alive(p, s)]
        assert main(["platform", "status", "--home", str(home)]) == 1
    finally:
        stack.down(home)
        shutil.rmtree(home, ignore_errors=True)


def test_missing_debian_package_names_it_and_the_apt_command(monkeypatch, tmp_path):
    from jointssl.platform import postgres, stack
    from jointssl.platform.settings import PlatformSettings

    monkeypatch.setattr(postgres, "find_bindir", lambda: None)
    with pytest.raises(JointsslError) as info:
        stack.up(PlatformSettings(home=tmp_path / "home", ports=pick_ports()), only=["postgres"])
    assert "PostgreSQL server binaries not found" in str(info.value)
    assert "apt-get install" in str(info.value) and "postgresql-15-postgis-3" in str(info.value)
    assert not list(tmp_path.glob("home/run/*.json"))


@services
def test_secrets_are_private_and_never_logged(platform):
    env = platform.env()
    for name in ("secrets.json", "ray_auth_token"):
        assert (platform.home / name).stat().st_mode & 0o777 == 0o600
    token = (platform.home / "ray_auth_token").read_text().strip()
    password = env["JOINTSSL_PGSTAC_DSN"].split(":")[2].split("@")[0]
    for log in (platform.home / "logs").glob("*.log"):
        text = log.read_text(errors="replace")
        for secret in (env["AWS_SECRET_ACCESS_KEY"], token, password):
            assert secret not in text, f"a secret appears in {log}"
