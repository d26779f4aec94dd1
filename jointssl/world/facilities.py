"""Facility layouts: what each METER-ML class looks like from above, and the confounders of negatives.

Each layout paints a :class:`~jointssl.world.canvas.Canvas` around a :class:`~jointssl.world.canvas.Frame`
(position, random rotation and scale), with randomised counts and sizes so footprints vary. Layouts
describe *what is on the ground*; how sensors see it lives in the sensor modules. Confounders (farm
barns, ponds, warehouses, houses, parking, centre pivots) are drawn in every scene, negatives and
facilities alike, so that "has a bright roof" or "has water" does not give a class away.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from jointssl.world.canvas import Canvas, Frame
from jointssl.world.materials import material_table

Layout = Callable[[Canvas, Frame, np.random.Generator], None]


def _m(name: str) -> int:
    return material_table().index(name)


def cafo(c: Canvas, f: Frame, rng: np.random.Generator) -> None:
    """Rows of long, narrow metal-roofed barns, manure lagoons beside them, a dirt feed lot, silos."""
    n_barns = int(rng.integers(3, 9))
    length, width, gap = rng.uniform(70, 140), rng.uniform(12, 20), rng.uniform(8, 20)
    for k in range(n_barns):
        v = (k - (n_barns - 1) / 2) * (width + gap)
        c.rect(*f.at(0, v), f.size(length), f.size(width), f.angle(), _m("metal_roof"), 5.0)
    side = 1 if rng.random() < 0.5 else -1
    u_lagoon = side * (0.5 * length + rng.uniform(40, 70))
    for k in range(int(rng.integers(1, 3))):
        size = rng.uniform(35, 70)
        x, y = f.at(u_lagoon, (k - 0.5) * size * 1.3)
        c.rect(x, y, f.size(size * rng.uniform(1.0, 1.6)), f.size(size), f.angle(), _m("lagoon"), 0.0)
    c.rect(*f.at(-u_lagoon * 0.8, 0), f.size(rng.uniform(40, 90)), f.size(rng.uniform(40, 80)), f.angle(),
           _m("bare_soil"), 0.0)
    for k in range(int(rng.integers(1, 4))):
        c.disk(*f.at(-0.5 * length - 10, k * 9.0), f.size(3.5), _m("metal_roof"), 12.0)
    c.line(*f.at(-0.5 * length - 30, 0), *f.at(-0.5 * length - 30, 250), f.size(6), _m("gravel"))


def landfill(c: Canvas, f: Frame, rng: np.random.Generator) -> None:
    """One or two large cover-soil mounds with an active tipping face, haul roads and a leachate pond."""
    rx, ry = rng.uniform(90, 160), rng.uniform(70, 130)
    c.mound(f.x, f.y, f.size(rx), f.size(ry), f.angle(), _m("landfill_cover"), rng.uniform(12, 35), rng)
    if rng.random() < 0.5:
        x, y = f.at(rx * 0.9, ry * 0.6)
        c.mound(x, y, f.size(rx * 0.6), f.size(ry * 0.6), f.angle(20), _m("dry_grass"), rng.uniform(8, 20), rng)
    u, v = rng.uniform(-0.4, 0.4) * rx, rng.uniform(-0.4, 0.4) * ry
    c.mound(*f.at(u, v), f.size(rng.uniform(20, 40)), f.size(rng.uniform(15, 30)), f.angle(), _m("refuse"), 2.0, rng)
    c.line(*f.at(u, v), *f.at(rx + 80, -ry - 40), f.size(8), _m("gravel"))
    c.rect(*f.at(-rx - 30, -ry * 0.3), f.size(rng.uniform(30, 50)), f.size(rng.uniform(20, 35)), f.angle(),
           _m("turbid_water"), 0.0)
    c.rect(*f.at(rx + 60, -ry - 30), f.size(25), f.size(15), f.angle(), _m("metal_roof"), 5.0)


def coal_mine(c: Canvas, f: Frame, rng: np.random.Generator) -> None:
    """Surface works of a coal mine: preparation plant, conveyors, coal stockpiles, spoil, haul roads."""
    c.rect(*f.at(0, -60), f.size(rng.uniform(120, 220)), f.size(rng.uniform(80, 140)), f.angle(), _m("gravel"), 0.0)
    for _ in range(int(rng.integers(2, 5))):
        x, y = f.at(rng.uniform(-70, 70), rng.uniform(-90, -30))
        c.mound(x, y, f.size(rng.uniform(15, 35)), f.size(rng.uniform(12, 25)), rng.uniform(0, 180), _m("coal"),
                rng.uniform(6, 15), rng)
    c.rect(*f.at(40, 20), f.size(40), f.size(22), f.angle(), _m("metal_roof"), 25.0)
    c.line(*f.at(40, 20), *f.at(-40, -60), f.size(3), _m("metal_roof"), 10.0)
    c.disk(*f.at(70, 30), f.size(8), _m("concrete"), 30.0)
    if rng.random() < 0.7:
        c.mound(*f.at(rng.uniform(-150, 150), 110), f.size(rng.uniform(60, 110)), f.size(rng.uniform(40, 80)),
                f.angle(), _m("bare_soil"), -rng.uniform(10, 30), rng)
    c.rect(*f.at(-130, 40), f.size(50), f.size(35), f.angle(), _m("water"), 0.0)
    c.line(*f.at(-40, -60), *f.at(-260, -200), f.size(12), _m("gravel"))
    c.line(*f.at(60, -60), *f.at(260, 80), f.size(10), _m("bare_soil"))


def gas_processing(c: Canvas, f: Frame, rng: np.random.Generator) -> None:
    """A compact gravel pad with process trains (pipe racks), a few tanks, compressor sheds and a flare."""
    pad_l, pad_w = rng.uniform(110, 200), rng.uniform(80, 140)
    c.rect(f.x, f.y, f.size(pad_l), f.size(pad_w), f.angle(), _m("gravel"), 0.0)
    for k in range(int(rng.integers(2, 5))):
        v = (k - 1.5) * 18.0
        c.line(*f.at(-0.35 * pad_l, v), *f.at(0.2 * pad_l, v), f.size(4), _m("metal_roof"), 6.0)
        c.disk(*f.at(0.25 * pad_l, v), f.size(3), _m("white_tank"), 15.0)
    for k in range(int(rng.integers(2, 6))):
        c.disk(*f.at(0.38 * pad_l, (k - 2) * 14.0), f.size(rng.uniform(4, 7)), _m("white_tank"), 8.0)
    c.rect(*f.at(-0.1 * pad_l, -0.38 * pad_w), f.size(40), f.size(14), f.angle(), _m("metal_roof"), 7.0)
    fx, fy = f.at(-0.5 * pad_l - 40, 0.3 * pad_w)
    c.disk(fx, fy, f.size(12), _m("bare_soil"), 0.0)
    c.disk(fx, fy, 1.0, _m("metal_roof"), 30.0)
    c.flame(fx, fy, f.size(rng.uniform(3, 6)))
    c.line(*f.at(0, 0), *f.at(0, 300), f.size(8), _m("gravel"))


def refinery_terminal(c: Canvas, f: Frame, rng: np.random.Generator) -> None:
    """A tank farm: rows of large round white tanks in bermed cells, pipes, and (refineries) process units."""
    rows, cols = int(rng.integers(2, 4)), int(rng.integers(2, 5))
    radius = rng.uniform(10, 24)
    pitch = 2 * radius + rng.uniform(12, 25)
    for i in range(rows):
        for j in range(cols):
            u, v = (j - (cols - 1) / 2) * pitch, (i - (rows - 1) / 2) * pitch
            c.rect(*f.at(u, v), f.size(pitch - 4), f.size(pitch - 4), f.angle(), _m("bare_soil"), 0.0)
            tank = "white_tank" if rng.random() < 0.8 else "metal_roof"
            c.disk(*f.at(u, v), f.size(radius * rng.uniform(0.7, 1.0)), _m(tank), rng.uniform(10, 16))
    u0 = 0.5 * cols * pitch + 20
    c.line(*f.at(-u0, -0.5 * rows * pitch - 10), *f.at(u0 + 80, -0.5 * rows * pitch - 10), f.size(5),
           _m("metal_roof"), 3.0)
    if rng.random() < 0.6:  # a refinery: process units with stacks beside the tank farm
        c.rect(*f.at(u0 + 50, 0), f.size(70), f.size(90), f.angle(), _m("concrete"), 0.0)
        for k in range(int(rng.integers(3, 7))):
            c.disk(*f.at(u0 + 30 + 12 * (k % 3), -30 + 20 * (k // 3)), f.size(3.5), _m("metal_roof"), 35.0)
        c.flame(*f.at(u0 + 95, 50), f.size(3))
    c.rect(*f.at(-u0 - 30, 0), f.size(40), f.size(60), f.angle(), _m("asphalt"), 0.0)


def wastewater(c: Canvas, f: Frame, rng: np.random.Generator) -> None:
    """Circular clarifiers (concrete rim, water inside), rectangular aeration basins, sludge beds, sheds."""
    n_clar = int(rng.integers(2, 6))
    r = rng.uniform(10, 20)
    for k in range(n_clar):
        x, y = f.at((k % 3) * (2 * r + 8), 40 + (k // 3) * (2 * r + 8))
        c.disk(x, y, f.size(r + 1.5), _m("concrete"), 2.0)
        c.disk(x, y, f.size(r), _m("turbid_water"), 0.0)
        c.disk(x, y, f.size(1.5), _m("concrete"), 3.0)
    n_basins = int(rng.integers(2, 5))
    bl, bw = rng.uniform(50, 90), rng.uniform(12, 22)
    for k in range(n_basins):
        x, y = f.at(-bl * 0.6, -20 - k * (bw + 4))
        c.rect(x, y, f.size(bl + 3), f.size(bw + 3), f.angle(), _m("concrete"), 1.5)
        c.rect(x, y, f.size(bl), f.size(bw), f.angle(), _m("turbid_water" if k % 2 else "lagoon"), 0.0)
    c.rect(*f.at(70, -40), f.size(30), f.size(20), f.angle(), _m("metal_roof"), 8.0)
    for k in range(int(rng.integers(0, 3))):
        c.rect(*f.at(110, -30 - 25 * k), f.size(40), f.size(18), f.angle(), _m("bare_soil"), 0.0)
    c.line(*f.at(-200, 120), *f.at(220, 140), f.size(rng.uniform(10, 25)), _m("water"))


# -- confounders: ordinary rural and peri-urban things ----------------------------------------------------
def farmstead(c: Canvas, f: Frame, rng: np.random.Generator) -> None:
    """A farm: house, one or two barns/sheds (metal roofs), grain bins, maybe a small pond."""
    c.rect(f.x, f.y, f.size(60), f.size(50), f.angle(), _m("gravel"), 0.0)
    c.rect(*f.at(-15, 10), f.size(14), f.size(10), f.angle(), _m("shingle_roof"), 6.0)
    for k in range(int(rng.integers(1, 3))):
        c.rect(*f.at(12, -12 + 18 * k), f.size(rng.uniform(20, 45)), f.size(rng.uniform(10, 16)), f.angle(),
               _m("metal_roof"), 6.0)
    for k in range(int(rng.integers(0, 4))):
        c.disk(*f.at(-20 + 9 * k, -20), f.size(4), _m("metal_roof"), 10.0)
    if rng.random() < 0.4:
        c.mound(*f.at(50, 40), f.size(rng.uniform(12, 30)), f.size(rng.uniform(10, 22)), 0, _m("water"), 0.0, rng)


def pond(c: Canvas, f: Frame, rng: np.random.Generator) -> None:
    c.mound(f.x, f.y, f.size(rng.uniform(15, 60)), f.size(rng.uniform(12, 45)), f.angle(),
            _m("water" if rng.random() < 0.7 else "turbid_water"), 0.0, rng)


def warehouse(c: Canvas, f: Frame, rng: np.random.Generator) -> None:
    """A large flat roof (metal or concrete) with an asphalt lot: bright, rectangular, not a facility."""
    c.rect(*f.at(0, -30), f.size(rng.uniform(80, 160)), f.size(rng.uniform(60, 120)), f.angle(), _m("asphalt"), 0.0)
    roof = "metal_roof" if rng.random() < 0.6 else "concrete"
    c.rect(f.x, f.y, f.size(rng.uniform(60, 130)), f.size(rng.uniform(40, 80)), f.angle(), _m(roof), 10.0)


def houses(c: Canvas, f: Frame, rng: np.random.Generator) -> None:
    """A row of rural houses along a road."""
    c.line(*f.at(-150, 0), *f.at(150, 0), f.size(7), _m("asphalt"))
    for k in range(int(rng.integers(2, 7))):
        u = -120 + k * rng.uniform(35, 50)
        roof = _m("shingle_roof" if rng.random() < 0.7 else "metal_roof")
        c.rect(*f.at(u, 18), f.size(14), f.size(11), f.angle(), roof, 6.0)
        c.disk(*f.at(u + 12, 30), f.size(5), _m("trees"), 10.0)


def centre_pivot(c: Canvas, f: Frame, rng: np.random.Generator) -> None:
    """A centre-pivot irrigated circle: round, green and textured like a facility from afar."""
    r = f.size(rng.uniform(80, 200))
    c.disk(f.x, f.y, r, _m("crop"), 0.5)


def small_tanks(c: Canvas, f: Frame, rng: np.random.Generator) -> None:
    """A well pad or farm fuel depot: a couple of small tanks on gravel (tanks alone are not a refinery)."""
    c.rect(f.x, f.y, f.size(40), f.size(30), f.angle(), _m("gravel"), 0.0)
    for k in range(int(rng.integers(1, 4))):
        c.disk(*f.at(-10 + 8 * k, 0), f.size(3), _m("white_tank"), 6.0)


FACILITY_LAYOUTS: dict[str, Layout] = {
    "cafo": cafo,
    "landfill": landfill,
    "coal_mine": coal_mine,
    "gas_processing": gas_processing,
    "refinery_terminal": refinery_terminal,
    "wastewater": wastewater,
}
CONFOUNDERS: dict[str, Layout] = {
    "farmstead": farmstead,
    "pond": pond,
    "warehouse": warehouse,
    "houses": houses,
    "centre_pivot": centre_pivot,
    "small_tanks": small_tanks,
}
