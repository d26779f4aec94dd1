"""Raster drawing primitives for latent ground scenes: rotated rectangles, disks, rings, lines, mounds.

A :class:`Canvas` is a north-up grid of ground cells in projected metres (UTM). It holds the material
id of each cell, its height above ground (m) and a hot-source mask (gas flares). Primitives paint only
the cells inside their bounding window, so a scene costs O(cells touched), not O(cells x shapes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Bounds:
    """Projected bounds in metres (west, south, east, north) of a footprint in CRS ``epsg``."""

    epsg: int
    west: float
    south: float
    east: float
    north: float

    @property
    def width(self) -> float:
        return self.east - self.west

    @property
    def height(self) -> float:
        return self.north - self.south

    def buffer(self, m: float) -> Bounds:
        return Bounds(self.epsg, self.west - m, self.south - m, self.east + m, self.north + m)


class Canvas:
    """Material / height / hot layers on a grid of ``gsd`` metres covering ``bounds``."""

    def __init__(self, bounds: Bounds, gsd: float):
        self.bounds = bounds
        self.gsd = gsd
        self.rows = int(round(bounds.height / gsd))
        self.cols = int(round(bounds.width / gsd))
        self.material = np.zeros((self.rows, self.cols), dtype=np.uint8)  # [H W] material id
        self.height = np.zeros((self.rows, self.cols), dtype=np.float32)  # [H W] metres above ground
        self.hot = np.zeros((self.rows, self.cols), dtype=bool)  # [H W] flames (SWIR emitters)
        self.phase = np.zeros((self.rows, self.cols), dtype=np.float32)  # [H W] crop phenology shift, days

    # -- geometry -------------------------------------------------------------------------------
    def _window(self, x: float, y: float, radius: float) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
        """Slices of the cells within ``radius`` of (x, y) and their centre coordinates ([h 1], [1 w])."""
        g, b = self.gsd, self.bounds
        c0 = max(0, int(math.floor((x - radius - b.west) / g)))
        c1 = min(self.cols, int(math.ceil((x + radius - b.west) / g)) + 1)
        r0 = max(0, int(math.floor((b.north - (y + radius)) / g)))
        r1 = min(self.rows, int(math.ceil((b.north - (y - radius)) / g)) + 1)
        if c0 >= c1 or r0 >= r1:
            return None
        xs = (b.west + (np.arange(c0, c1) + 0.5) * g)[None, :] - x  # [1 w]
        ys = (b.north - (np.arange(r0, r1) + 0.5) * g)[:, None] - y  # [h 1]
        return slice(r0, r1), slice(c0, c1), xs, ys

    def _paint(self, rs: slice, cs: slice, mask: np.ndarray, material: int, height: float | np.ndarray | None) -> None:
        self.material[rs, cs][mask] = material
        if height is not None:
            h = height[mask] if isinstance(height, np.ndarray) else height
            self.height[rs, cs][mask] = h

    # -- primitives -----------------------------------------------------------------------------
    def rect(self, x: float, y: float, length: float, width: float, angle_deg: float, material: int,
             height: float | None = 0.0) -> None:
        """A rectangle centred at (x, y), ``length`` along ``angle_deg`` (counter-clockwise from east)."""
        win = self._window(x, y, 0.5 * math.hypot(length, width) + self.gsd)
        if win is None:
            return
        rs, cs, xs, ys = win
        a = math.radians(angle_deg)
        u = xs * math.cos(a) + ys * math.sin(a)  # [h w] along the long axis
        v = -xs * math.sin(a) + ys * math.cos(a)  # [h w] across it
        mask = (np.abs(u) <= 0.5 * length) & (np.abs(v) <= 0.5 * width)
        self._paint(rs, cs, mask, material, height)

    def disk(self, x: float, y: float, radius: float, material: int, height: float | None = 0.0,
             inner: float = 0.0) -> None:
        """A filled disk, or a ring when ``inner`` > 0."""
        win = self._window(x, y, radius + self.gsd)
        if win is None:
            return
        rs, cs, xs, ys = win
        d = np.hypot(xs, ys)
        mask = (d <= radius) & (d >= inner)
        self._paint(rs, cs, mask, material, height)

    def line(self, x0: float, y0: float, x1: float, y1: float, width: float, material: int,
             height: float | None = 0.0) -> None:
        """A straight strip (road, pipe rack, conveyor) from (x0, y0) to (x1, y1)."""
        length = math.hypot(x1 - x0, y1 - y0)
        angle = math.degrees(math.atan2(y1 - y0, x1 - x0))
        self.rect(0.5 * (x0 + x1), 0.5 * (y0 + y1), length, max(width, 0.5 * self.gsd), angle, material, height)

    def mound(self, x: float, y: float, rx: float, ry: float, angle_deg: float, material: int, peak: float,
              rng: np.random.Generator) -> None:
        """An irregular elliptical mound (landfill cell, spoil heap, coal pile) rising to ``peak`` m.

        A negative ``peak`` digs a pit. The rim wobbles with a few random harmonics so mounds are not
        perfect ellipses.
        """
        win = self._window(x, y, max(rx, ry) * 1.3 + self.gsd)
        if win is None:
            return
        rs, cs, xs, ys = win
        a = math.radians(angle_deg)
        u = (xs * math.cos(a) + ys * math.sin(a)) / rx
        v = (-xs * math.sin(a) + ys * math.cos(a)) / ry
        theta = np.arctan2(v, u)
        wobble = 1.0 + sum(rng.uniform(0.03, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
        r = np.hypot(u, v) / wobble  # [h w] 0 at the centre, 1 on the rim
        mask = r <= 1.0
        profile = peak * np.clip(1.0 - r**2, 0.0, 1.0)  # [h w]
        self._paint(rs, cs, mask, material, profile)

    def flame(self, x: float, y: float, radius: float) -> None:
        win = self._window(x, y, radius + self.gsd)
        if win is None:
            return
        rs, cs, xs, ys = win
        self.hot[rs, cs] |= np.hypot(xs, ys) <= max(radius, 0.5 * self.gsd)


@dataclass(frozen=True)
class Frame:
    """A facility's local frame: origin (x, y) in UTM, rotation and scale. ``at(u, v)`` -> UTM (x, y)."""

    x: float
    y: float
    angle_deg: float
    scale: float

    def at(self, u: float, v: float) -> tuple[float, float]:
        a = math.radians(self.angle_deg)
        u, v = u * self.scale, v * self.scale
        return self.x + u * math.cos(a) - v * math.sin(a), self.y + u * math.sin(a) + v * math.cos(a)

    def angle(self, local_deg: float = 0.0) -> float:
        return self.angle_deg + local_deg

    def size(self, metres: float) -> float:
        return metres * self.scale
