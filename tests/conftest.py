"""Shared fixtures: the real local platform for ``services`` tests, the rule for starting Ray, and one tiny
world with its index for the end-to-end tests.

The ``platform`` fixture starts the whole stack once per session, in a temporary home on free,
non-default ports (so it never meets a developer's own platform), and stops it by PID at the end,
failing the session if any recorded process survives.

Ray binds several ports on every interface unless it runs in a loopback-only network namespace, so
it starts only inside one (``infra/local/loopback-netns.sh`` sets ``JOINTSSL_IN_NETNS``). With
``JOINTSSL_REQUIRE_NETNS=1`` (CI) running outside the namespace is an error, not a skip.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

RAY_SERVICES = ("ray",)


def ray_allowed() -> tuple[bool, str]:
    """(may Ray start here, why not). Fails the test run when CI demands the namespace."""
    if os.environ.get("JOINTSSL_IN_NETNS"):
        return True, ""
    reason = "Ray starts only in the loopback-only namespace: run under infra/local/loopback-netns.sh"
    if os.environ.get("JOINTSSL_REQUIRE_NETNS") == "1":
        pytest.fail(f"JOINTSSL_REQUIRE_NETNS=1 but JOINTSSL_IN_NETNS is not set. {reason}", pytrace=False)
    return False, reason


def require_ray() -> None:
    """Skip (or, under JOINTSSL_REQUIRE_NETNS=1, fail) a test that needs a Ray cluster."""
    allowed, reason = ray_allowed()
    if not allowed:
        pytest.skip(reason)


def pick_ports():
    """Free, distinct, non-default loopback ports (:func:`jointssl.platform.settings.free_ports`)."""
    from jointssl.platform.settings import free_ports

    return free_ports()


def make_home(prefix: str = "jointssl-platform-") -> Path:
    """A short home under /tmp that the ``postgres`` OS user can enter (pytest's tmp_path is 0700
    and deep; Ray's socket paths must stay short)."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    home.chmod(0o755)
    return home


@dataclass
class RunningPlatform:
    """The session's platform: where it lives, its URLs, and the environment a job would get."""

    home: Path
    settings: object  # jointssl.platform.settings.PlatformSettings
    services: tuple[str, ...]
    up_seconds: float

    @property
    def has_ray(self) -> bool:
        return "ray" in self.services

    def env(self) -> dict[str, str]:
        from jointssl.platform import stack

        return stack.client_env(self.home)

    def url(self, name: str) -> str:
        from jointssl.platform import stack

        return {s.name: s.url for s in stack.status(self.home)}[name]


@pytest.fixture(scope="session")
def platform() -> Iterator[RunningPlatform]:
    from jointssl.platform import stack
    from jointssl.platform.process import is_alive
    from jointssl.platform.settings import PlatformSettings

    allowed, _ = ray_allowed()
    services = tuple(n for n in stack.SERVICE_NAMES if allowed or n not in RAY_SERVICES)
    home = make_home()
    settings = PlatformSettings(home=home, ports=pick_ports(), ray_num_cpus=2)
    try:
        result = stack.up(settings, only=services)
        yield RunningPlatform(home=home, settings=settings, services=services, up_seconds=result.seconds)
    finally:
        recorded = {}
        for service in stack.build_services(settings, None).values():
            recorded.update(service.process.recorded_pids())
        left = stack.down(home)
        alive = [p for p, s in recorded.items() if is_alive(p, s)]
        shutil.rmtree(home, ignore_errors=True)
        assert not left and not alive, f"platform processes left running after down: {sorted(set(left + alive))}"


@dataclass(frozen=True)
class TestWorld:
    """One tiny world and its co-location index for every end-to-end test of the session (local disk).

    Generating the test world costs 5-45 s on 2 cores; the end-to-end tests only read it, each with its own
    storage root for checkpoints and tracking (``--world.out`` / ``--index.out`` point here)."""

    world: str
    index: str

    def args(self, with_index: bool = True) -> list[str]:
        """Command-line overrides that read this world (and its index)."""
        return ["--world.out", self.world, *(["--index.out", self.index] if with_index else [])]


@pytest.fixture(scope="session")
def test_world(tmp_path_factory) -> TestWorld:
    from jointssl.cli import main

    root = tmp_path_factory.mktemp("test-world")
    world = TestWorld(str(root / "world"), str(root / "index"))
    with pytest.MonkeyPatch.context() as patch:
        for key in ("JOINTSSL_STAC_URL", "JOINTSSL_PGSTAC_DSN", "JOINTSSL_STORAGE_ROOT", "AWS_ENDPOINT_URL"):
            patch.delenv(key, raising=False)
        common = ["--config", "configs/test.yaml", "--storage.root", str(root)]
        assert main(["world", *common, *world.args(with_index=False)]) == 0
        assert main(["index", *common, *world.args()]) == 0
    return world


LANE_VARIABLE = "JOINTSSL_TEST_LANE"
PLATFORM_LANE_FIXTURES = frozenset({"platform", "infer_world"})
"""Test modules with a test that uses one of these session fixtures, or marked ``platform_lane`` (to even out the
two lanes' time), run in the 'platform' lane, every other module in the 'local' lane (scripts/test-lanes.sh runs
the two concurrently): each fixture is built once, in the lane of its users, and a module's tests stay together
(some read what an earlier test of theirs left)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ``JOINTSSL_TEST_LANE=platform|local``, keep only that lane's tests (the others are deselected)."""
    lane = os.environ.get(LANE_VARIABLE)
    if not lane:
        return
    if lane not in ("platform", "local"):
        raise pytest.UsageError(f"{LANE_VARIABLE}={lane!r}: expected 'platform' or 'local' (or unset: every test)")
    platform_modules = {item.path for item in items if PLATFORM_LANE_FIXTURES & set(getattr(item, "fixturenames", ()))
                        or item.get_closest_marker("platform_lane")}
    kept = [item for item in items if (item.path in platform_modules) == (lane == "platform")]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept


_REPO = Path(__file__).resolve().parents[1]
_MLRUNS = _REPO / "mlruns"


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_MLRUNS_BEFORE] = _MLRUNS.exists()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail a run that leaves ``mlruns/`` in the checkout: some MLflow call used the default artifact
    location of the working directory instead of the run's own store."""
    if _MLRUNS.exists() and not session.config.stash.get(_MLRUNS_BEFORE, True):
        print(f"\n{_MLRUNS} was created by this test run: an MLflow experiment without an artifact location "
              "of its own (give one beside the store, as jointssl.tracking.experiment_id does)")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_MLRUNS_BEFORE = pytest.StashKey[bool]()
