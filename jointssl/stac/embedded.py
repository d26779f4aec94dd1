"""The STAC API a job searches: the configured one, or the world's own catalog served here on loopback.

With no ``stac.url`` and no ``JOINTSSL_STAC_URL``, jobs still search through a real STAC API (so
pystac-client stays the single search path): the world's ``stac/collections/*.json`` and
``stac/items/*.ndjson`` are served by an in-memory ``rustac serve`` on a free 127.0.0.1 port for
the duration of the job. A world in object storage is copied to a temporary directory first.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jointssl import storage
from jointssl.errors import JointsslError


@contextmanager
def stac_api(configured_url: str | None, world: str) -> Iterator[str]:
    """Yield the URL of the STAC API to search."""
    if configured_url:
        yield configured_url
        return
    from jointssl.platform.rustac import serve_stac

    with tempfile.TemporaryDirectory(prefix="jointssl-stac-") as tmp:
        collections, items = world_catalog_files(world, Path(tmp))
        with serve_stac(collections, items) as url:
            yield url


def world_catalog_files(world: str, scratch: Path) -> tuple[list[Path], list[Path]]:
    """Local paths of the world's collection JSON and item ndjson files (copied here if remote)."""
    fs, root = storage.filesystem(storage.join(world, "stac"))
    collections = sorted(fs.glob(f"{root}/collections/*.json"))
    items = sorted(fs.glob(f"{root}/items/*.ndjson"))
    if not collections:
        raise JointsslError(
            f"no STAC catalog at {storage.join(world, 'stac')} (expected collections/*.json and items/*.ndjson)",
            hint="generate the world first ('jointssl world'), or point stac.url / JOINTSSL_STAC_URL at a STAC API",
        )
    if not storage.is_remote(world):
        return [Path(p) for p in collections], [Path(p) for p in items]
    local: list[list[Path]] = [[], []]
    for group, paths in zip(local, (collections, items)):
        for path in paths:
            target = scratch / Path(path).parent.name / Path(path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(path, str(target))
            group.append(target)
    return local[0], local[1]
