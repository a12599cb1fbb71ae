"""An alert's areas → coso's units: geocodes whose valueName the settings name as
administrative codes, and circles and polygons against the endpoints that have coordinates
(each endpoint found brings its unit)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select

from channels.endpoints import Endpoint
from coso.errors import InputError
from coso.units import UnitTree, unit_tree
from dispatcher.cap.document import Area
from dispatcher.cap.geometry import (
    Circle,
    Point,
    Polygon,
    in_circle,
    in_polygon,
    parse_circle,
    parse_polygon,
)


@dataclass(frozen=True)
class Placed:
    """An endpoint with coordinates: where it stands and its unit."""

    endpoint_id: int
    point: Point
    unit_code: str | None


@dataclass(frozen=True)
class AreaMatch:
    units: tuple[str, ...]  # current unit codes, sorted
    endpoint_ids: tuple[int, ...]  # endpoints inside a circle or polygon
    unknown_codes: tuple[str, ...]  # geocodes of the named kinds that are no unit


def shapes_of(areas: Iterable[Area]) -> tuple[list[Circle], list[Polygon]]:
    """Every circle and polygon, read; a bad one is an error naming it."""
    circles: list[Circle] = []
    polygons: list[Polygon] = []
    for n, area in enumerate(areas, start=1):
        circles += [parse_circle(f"area[{n}]/circle", text) for text in area.circles]
        polygons += [parse_polygon(f"area[{n}]/polygon", text) for text in area.polygons]
    return circles, polygons


def match_areas(
    areas: Sequence[Area], geocode_names: Iterable[str], tree: UnitTree, placed: Iterable[Placed]
) -> AreaMatch:
    """Units the areas name or hold endpoints in (pure: the unit tree and the placed
    endpoints are given)."""
    names = set(geocode_names)
    units: set[str] = set()
    unknown: list[str] = []
    for area in areas:
        for code in area.geocodes:
            if code.name not in names:
                continue
            try:
                tree.below(code.value)
            except InputError:
                unknown.append(code.value)
                continue
            # a pre-2025 code stands for the current units it became
            units |= {code.value} if code.value in tree.current else tree.legacy[code.value]
    circles, polygons = shapes_of(areas)
    inside: list[int] = []
    if circles or polygons:
        for endpoint in placed:
            if any(in_circle(endpoint.point, c) for c in circles) or any(
                in_polygon(endpoint.point, p) for p in polygons
            ):
                inside.append(endpoint.endpoint_id)
                if endpoint.unit_code:
                    units.add(endpoint.unit_code)
    return AreaMatch(
        tuple(sorted(units)), tuple(sorted(set(inside))), tuple(dict.fromkeys(unknown))
    )


def placed_endpoints(engine: Engine) -> list[Placed]:
    table = Endpoint.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            select(table.c.id, table.c.latitude, table.c.longitude, table.c.unit_code).where(
                table.c.latitude.is_not(None),
                table.c.longitude.is_not(None),
                table.c.enabled.is_(True),
            )
        ).all()
    return [Placed(eid, Point(lat, lon), unit) for eid, lat, lon, unit in rows]


def units_of_alert(
    engine: Engine, areas: Sequence[Area], geocode_names: Iterable[str]
) -> AreaMatch:
    has_shapes = any(a.circles or a.polygons for a in areas)
    return match_areas(
        areas, geocode_names, unit_tree(engine), placed_endpoints(engine) if has_shapes else []
    )
