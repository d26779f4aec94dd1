"""Console progress of a run: tiles done / total, tiles per second, ETA.

Tiles are planned inside the stream (a cell's tiles are known once its STAC searches are done), so
until every cell has reported, the total is an estimate: tiles known so far plus the cells still
unplanned times the mean tiles per planned cell, shown with '~'. One line every few seconds (logs,
not a redrawn bar: it reads the same in a terminal, a Ray job log and a Kubernetes pod log).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger("jointssl.infer")


@dataclass
class Progress:
    cells: int
    """Cells this attempt has to do (committed ones excluded)."""
    every_s: float = 5.0
    tiles_done: int = 0
    cells_done: int = 0
    tiles_known: int = 0
    """Tiles of the cells seen so far (done or in flight)."""
    cells_seen: int = 0
    started: float = field(default_factory=time.perf_counter)
    last: float = 0.0
    first_output_s: float | None = None
    """Seconds from the start until the first predictions arrived (actor start-up, first reads)."""

    def saw_cell(self, tiles: int) -> None:
        """A cell reported its tile count (its first rows arrived)."""
        self.cells_seen += 1
        self.tiles_known += tiles

    def update(self, tiles: int, cells: int, force: bool = False) -> None:
        if tiles and self.first_output_s is None:
            self.first_output_s = round(time.perf_counter() - self.started, 1)
        self.tiles_done += tiles
        self.cells_done += cells
        now = time.perf_counter()
        if force or now - self.last >= self.every_s:
            self.last = now
            log.info("%s", self.line())

    @property
    def total(self) -> tuple[int, bool]:
        """(total tiles, exact?)."""
        if self.cells_seen >= self.cells:
            return self.tiles_known, True
        mean = self.tiles_known / self.cells_seen if self.cells_seen else 0.0
        return round(self.tiles_known + mean * (self.cells - self.cells_seen)), False

    @property
    def rate(self) -> float:
        seconds = time.perf_counter() - self.started
        return self.tiles_done / seconds if seconds > 0 else 0.0

    def line(self) -> str:
        total, exact = self.total
        rate = self.rate
        left = max(total - self.tiles_done, 0)
        eta = f"{left / rate:,.0f} s" if rate > 0 and (self.cells_seen or exact) else "?"
        return (f"infer: {self.tiles_done:,}/{'' if exact else '~'}{total:,} tiles, cells {self.cells_done:,}/"
                f"{self.cells:,}, {rate:,.1f} tiles/s, ETA {eta}")
