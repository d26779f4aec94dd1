"""One incremental run per area at a time: a lease object next to the area's watermark.

A scheduled ``--incremental`` run of an area first takes the area's lease, ``<watermarks>/<area
key>.lease.json`` (holder id, host, when taken, until when), created atomically: on S3 a conditional
PUT (``If-None-Match: *``, which SeaweedFS and AWS S3 refuse with 412 when the object exists), on a
local disk ``O_CREAT | O_EXCL``. A second run of the same area finds it taken and exits 0, saying who
holds it until when: a slow night and the next CronJob tick never write the same partitions or move
the watermark together. The holder deletes the lease when it is done (also when it fails); a lease
whose holder died is taken over once it has expired (:data:`DEFAULT_LEASE_S`: longer than a run), by a
conditional replacement of exactly the expired object (``If-Match: <its ETag>``; locally an atomic
rename), so two runs that both see it expired cannot both win.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from jointssl import storage

if TYPE_CHECKING:
    from jointssl.config.schema import JobConfig

log = logging.getLogger("jointssl.infer")

DEFAULT_LEASE_S = 6 * 3600
"""How long a lease holds without its holder: longer than an incremental run of an area takes."""


@dataclass(frozen=True)
class Lease:
    area: str
    holder: str
    """Unique per run attempt: '<host>:<pid>:<random>'."""
    acquired: str
    """UTC ISO."""
    expires: str
    """UTC ISO; after this another run may take the lease over."""

    def expired(self, now: datetime) -> bool:
        return _parse(self.expires) <= now


class LeaseHeld(Exception):
    """The area's lease is held by another run (not an error: the caller exits 0)."""

    def __init__(self, url: str, lease: Lease):
        super().__init__(f"area {lease.area} is being processed by {lease.holder} (lease {url}, "
                         f"taken {lease.acquired}, held until {lease.expires}); this run exits without writing")
        self.lease = lease


def lease_url(watermarks: str, area_key: str) -> str:
    return storage.join(watermarks, f"{area_key}.lease.json")


def run_leased(config: JobConfig, run: Callable[[JobConfig], dict[str, Any]]) -> dict[str, Any]:
    """``run(config)`` holding the lease of the config's area; when another run holds it, a summary that
    says who until when (``status: 'skipped'``), without running."""
    from jointssl.infer.area import load_area
    from jointssl.infer.watermark import watermarks_root

    area = load_area(config.infer).key
    url = lease_url(watermarks_root(config), area)
    try:
        with area_lease(url, area):
            return run(config)
    except LeaseHeld as held:
        log.info("infer: %s", held)
        return {"status": "skipped", "reason": str(held), "lease": {**asdict(held.lease), "url": url}}


def new_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@contextmanager
def area_lease(url: str, area_key: str, ttl_s: float = DEFAULT_LEASE_S, holder: str | None = None
               ) -> Iterator[Lease]:
    """Hold the area's lease for the ``with`` block (released at its end, errors included); raises
    :class:`LeaseHeld` when another run holds an unexpired one."""
    lease = acquire(url, area_key, ttl_s, holder or new_holder())
    try:
        yield lease
    finally:
        release(url, lease)


def acquire(url: str, area_key: str, ttl_s: float, holder: str, now: datetime | None = None) -> Lease:
    """Create the lease at ``url`` for ``holder``, or take over an expired one; LeaseHeld otherwise."""
    now = now or datetime.now(timezone.utc)
    lease = Lease(area_key, holder, _iso(now), _iso(now + timedelta(seconds=ttl_s)))
    body = (json.dumps(asdict(lease), indent=2) + "\n").encode()
    store = _store(url)
    if store.create(body):
        return lease
    current, tag = store.read()
    if current is None:  # released between our create and read: try once more
        if store.create(body):
            return lease
        current, tag = store.read()
    if current is not None and not current.expired(now):
        raise LeaseHeld(url, current)
    if store.replace(tag, body):
        return lease
    current, _ = store.read()
    raise LeaseHeld(url, current or lease)  # another run took it over first


def release(url: str, lease: Lease) -> None:
    """Delete the lease if ``lease``'s holder still holds it (a taken-over lease is left to its new holder)."""
    store = _store(url)
    current, _ = store.read()
    if current is not None and current.holder == lease.holder:
        store.delete()


class _LocalStore:
    def __init__(self, path: str):
        self.path = path

    def create(self, body: bytes) -> bool:
        """The whole lease appears at once or not at all: written to a temporary file, then hard-linked to
        the lease's name (fails if it exists). An O_EXCL create written afterwards would let a concurrent
        reader meet an empty file."""
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        tmp = f"{self.path}.new-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as f:
            f.write(body)
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True

    def read(self) -> tuple[Lease | None, str | None]:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None, None
        return _lease(data), str(os.stat(self.path).st_ino)

    def replace(self, tag: str | None, body: bytes) -> bool:
        """Move the expired lease aside (atomic: one of several runs succeeds), then create ours."""
        aside = f"{self.path}.expired-{uuid.uuid4().hex[:8]}"
        try:
            if tag is not None and str(os.stat(self.path).st_ino) != tag:
                return False  # replaced since we read it
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        os.unlink(aside)
        return self.create(body)

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class _S3Store:
    """Conditional writes through boto3 (s3fs cannot send If-None-Match / If-Match on a PUT)."""

    def __init__(self, url: str):
        import boto3

        bucket, _, key = url[len("s3://"):].partition("/")
        self.bucket, self.key = bucket, key
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        self.client = boto3.client("s3", endpoint_url=endpoint or None)

    def create(self, body: bytes) -> bool:
        return self._put(body, IfNoneMatch="*")

    def replace(self, tag: str | None, body: bytes) -> bool:
        return tag is not None and self._put(body, IfMatch=tag)

    def _put(self, body: bytes, **condition: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body, ContentType="application/json",
                                   **condition)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict",
                                                             "412", "409"):
                return False
            raise
        return True

    def read(self) -> tuple[Lease | None, str | None]:
        from botocore.exceptions import ClientError

        try:
            got = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None, None
            raise
        return _lease(got["Body"].read()), str(got["ETag"])

    def delete(self) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key)


def _store(url: str) -> _LocalStore | _S3Store:
    if url.startswith("s3://"):
        return _S3Store(url)
    if storage.is_remote(url):
        raise ValueError(f"area leases need s3:// or a local path, not {url}")
    return _LocalStore(os.path.abspath(url))


def _lease(data: bytes) -> Lease:
    return Lease(**json.loads(data))


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
