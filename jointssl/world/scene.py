"""One latent ground scene per footprint: land cover, facility structures, confounders.

The renderer takes an arbitrary footprint (UTM bounds) and a list of placed facilities, so the same
code renders a single site (one facility near the centre) or, later, a contiguous region holding
several facilities for region-scale inference. Sensors image the resulting :class:`Scene`; they never
see the facility list, only materials, heights and hot spots, as a real sensor would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from jointssl.world.canvas import Bounds, Canvas, Frame
from jointssl.world.facilities import CONFOUNDERS, FACILITY_LAYOUTS
from jointssl.world.materials import material_table
from jointssl.world.sites import Site

# Land cover of fields, humid (east) and arid (west) ends; a site's mix is interpolated by aridity.
_COVER = ("crop", "vegetation", "trees", "bare_soil", "dry_grass")
_COVER_HUMID = np.array([0.45, 0.25, 0.18, 0.10, 0.02])
_COVER_ARID = np.array([0.15, 0.05, 0.00, 0.25, 0.55])


@dataclass(frozen=True)
class PlacedFacility:
    """A facility (a key of FACILITY_LAYOUTS) or confounder (a key of CONFOUNDERS) at a UTM position."""

    kind: str
    x: float
    y: float
    angle_deg: float
    scale: float


@dataclass
class Scene:
    bounds: Bounds
    gsd: float
    material: np.ndarray  # [H W] uint8 material id (jointssl.world.materials)
    height: np.ndarray  # [H W] float32 metres above ground (negative: pits)
    hot: np.ndarray  # [H W] bool, flames
    phase: np.ndarray  # [H W] float32 crop phenology shift in days
    texture: np.ndarray  # [H W] float32 multiplicative brightness texture around 1
    moisture: np.ndarray  # [H W] float32 soil moisture anomaly in [-1, 1] (SAR)
    latitude: float
    aridity: float

    def window(self, bounds: Bounds) -> tuple[slice, slice]:
        """Row/column slices of the scene cells inside ``bounds`` (which must lie on the scene grid)."""
        r0 = int(round((self.bounds.north - bounds.north) / self.gsd))
        c0 = int(round((bounds.west - self.bounds.west) / self.gsd))
        rows, cols = int(round(bounds.height / self.gsd)), int(round(bounds.width / self.gsd))
        if r0 < 0 or c0 < 0 or r0 + rows > self.material.shape[0] or c0 + cols > self.material.shape[1]:
            raise ValueError(f"{bounds} is not inside the scene {self.bounds}")
        return slice(r0, r0 + rows), slice(c0, c0 + cols)


def render_scene(bounds: Bounds, gsd: float, facilities: list[PlacedFacility], latitude: float, aridity: float,
                 rng: np.random.Generator) -> Scene:
    """Paint land cover, then confounders, then facilities (in list order) on a ``gsd`` grid over ``bounds``."""
    canvas = Canvas(bounds, gsd)
    _land_cover(canvas, aridity, rng)
    for placed in sorted(facilities, key=lambda p: p.kind in FACILITY_LAYOUTS):  # facilities paint last
        layout = FACILITY_LAYOUTS.get(placed.kind) or CONFOUNDERS[placed.kind]
        layout(canvas, Frame(placed.x, placed.y, placed.angle_deg, placed.scale), rng)
    shape = canvas.material.shape
    texture = 1.0 + 0.04 * gaussian_filter(rng.standard_normal(shape), 1.0) * 3.0 + 0.03 * rng.standard_normal(shape)
    moisture = np.tanh(gaussian_filter(rng.standard_normal(shape), 15.0 / gsd) * 20.0)
    return Scene(bounds, gsd, canvas.material, canvas.height, canvas.hot, canvas.phase,
                 texture.astype(np.float32), moisture.astype(np.float32), latitude, aridity)


def plan_site(
    site: Site, centre_xy: tuple[float, float], extent_m: float, rng: np.random.Generator
) -> list[PlacedFacility]:
    """Facilities of ``site`` near ``centre_xy`` plus confounders scattered over a square of ``extent_m``.

    The first facility sits within 30 m of the site point; a second one (multi-label) 120-170 m away.
    Half of the layouts follow the land survey grid (0/90 degrees, as US farms and plants do), the
    rest take any rotation; scale varies by -25 % .. +30 %.
    """
    x0, y0 = centre_xy
    placed: list[PlacedFacility] = []
    for k, kind in enumerate(site.classes):
        if k == 0:
            x, y = x0 + rng.uniform(-30, 30), y0 + rng.uniform(-30, 30)
        else:
            bearing = rng.uniform(0, 2 * math.pi)
            d = rng.uniform(120, 170)
            x, y = x0 + d * math.cos(bearing), y0 + d * math.sin(bearing)
        placed.append(PlacedFacility(kind, x, y, _angle(rng), float(rng.uniform(0.75, 1.3))))
    n_conf = int(rng.integers(2, 6)) if not site.classes else int(rng.integers(0, 4))
    names = sorted(CONFOUNDERS)
    for _ in range(n_conf):
        kind = names[int(rng.integers(len(names)))]
        x, y = x0 + rng.uniform(-0.5, 0.5) * extent_m, y0 + rng.uniform(-0.5, 0.5) * extent_m
        if not site.classes and rng.random() < 0.5:  # negatives often have their confounder centred
            x, y = x0 + rng.uniform(-40, 40), y0 + rng.uniform(-40, 40)
        placed.append(PlacedFacility(kind, x, y, _angle(rng), float(rng.uniform(0.8, 1.3))))
    return placed


def _angle(rng: np.random.Generator) -> float:
    if rng.random() < 0.5:
        return float(rng.choice([0.0, 90.0]) + rng.normal(0, 3))
    return float(rng.uniform(0, 180))


def _land_cover(c: Canvas, aridity: float, rng: np.random.Generator) -> None:
    """Fields on a north-up survey grid, tree cover in humid places, and a few section-line roads."""
    table = material_table()
    probs = (1 - aridity) * _COVER_HUMID + aridity * _COVER_ARID
    ids = np.array([table.index(n) for n in _COVER], dtype=np.uint8)
    b, g = c.bounds, c.gsd
    xs = b.west + (np.arange(c.cols) + 0.5) * g  # [W]
    ys = b.north - (np.arange(c.rows) + 0.5) * g  # [H]
    field_w, field_h = rng.uniform(120, 400, size=2)
    fx = np.floor((xs - b.west - rng.uniform(0, field_w)) / field_w).astype(int) + 2  # [W] field column
    fy = np.floor((ys - b.south - rng.uniform(0, field_h)) / field_h).astype(int) + 2  # [H] field row
    nfx, nfy = fx.max() + 1, fy.max() + 1
    cover = rng.choice(len(_COVER), size=(nfy, nfx), p=probs / probs.sum())  # [fy fx]
    phase = rng.uniform(-45, 45, size=(nfy, nfx)).astype(np.float32)
    c.material[:] = ids[cover[fy[:, None], fx[None, :]]]  # [H W]
    c.phase[:] = phase[fy[:, None], fx[None, :]]
    # tree cover: smooth noise above a threshold that falls with humidity
    noise = gaussian_filter(rng.standard_normal((c.rows, c.cols)), 25.0 / g)
    noise /= noise.std() + 1e-9
    trees = noise > (0.6 + 2.0 * aridity)
    c.material[trees] = table.index("trees")
    c.height[trees] = 15.0
    # section-line roads along some field edges
    road = table.index("gravel" if rng.random() < 0.5 else "asphalt")
    width = int(max(1, round(7.0 / g)))
    for edges, axis in ((np.flatnonzero(np.diff(fx)), 1), (np.flatnonzero(np.diff(fy)), 0)):
        for e in edges:
            if rng.random() < 0.35:
                sl = slice(max(0, e - width // 2), e + width - width // 2)
                if axis == 1:
                    c.material[:, sl], c.height[:, sl] = road, 0.0
                else:
                    c.material[sl, :], c.height[sl, :] = road, 0.0
