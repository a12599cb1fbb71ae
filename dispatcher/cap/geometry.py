"""CAP's shapes on WGS 84: a circle "lat,lon radius_km" and a polygon "lat,lon lat,lon …"
(closed: the first pair repeated last), and whether a point lies inside. Pure functions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

from coso.errors import InputError

EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)


@dataclass(frozen=True)
class Point:
    lat: float
    lon: float


@dataclass(frozen=True)
class Circle:
    centre: Point
    radius_km: float


@dataclass(frozen=True)
class Polygon:
    points: tuple[Point, ...]


def parse_point(field: str, text: str) -> Point:
    lat_text, comma, lon_text = text.partition(",")
    try:
        if not comma:
            raise ValueError
        lat, lon = float(lat_text), float(lon_text)
    except ValueError as exc:
        raise InputError(field, text, "cần cặp vĩ độ,kinh độ như 21.03,105.85") from exc
    check_coordinates(field, lat, lon)
    return Point(lat, lon)


def check_coordinates(field: str, lat: float, lon: float) -> None:
    if not (math.isfinite(lat) and -90 <= lat <= 90):
        raise InputError(field, lat, "vĩ độ phải từ -90 đến 90")
    if not (math.isfinite(lon) and -180 <= lon <= 180):
        raise InputError(field, lon, "kinh độ phải từ -180 đến 180")


def parse_circle(field: str, text: str) -> Circle:
    centre_text, _, radius_text = text.strip().partition(" ")
    try:
        radius = float(radius_text)
    except ValueError as exc:
        raise InputError(
            field, text, "cần 'vĩ độ,kinh độ bán_kính_km' như '21.03,105.85 5'"
        ) from exc
    if not (math.isfinite(radius) and radius >= 0):
        raise InputError(field, text, "bán kính phải là số km không âm")
    return Circle(parse_point(field, centre_text), radius)


def parse_polygon(field: str, text: str) -> Polygon:
    points = tuple(parse_point(field, pair) for pair in text.split())
    if len(points) < 4:
        raise InputError(field, text, "đa giác cần ít nhất 4 cặp tọa độ")
    if points[0] != points[-1]:
        raise InputError(field, text, "đa giác phải khép kín: cặp đầu và cặp cuối trùng nhau")
    return Polygon(points)


def distance_km(a: Point, b: Point) -> float:
    """Great-circle distance (haversine)."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi, dlam = phi2 - phi1, math.radians(b.lon - a.lon)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def in_circle(point: Point, circle: Circle) -> bool:
    return distance_km(point, circle.centre) <= circle.radius_km


def in_polygon(point: Point, polygon: Polygon) -> bool:
    """Even-odd rule on lat/lon as plane coordinates (fine at a province's scale); a point
    on an edge counts as inside."""
    inside = False
    pts = polygon.points
    for a, b in pairwise(pts):
        if _on_segment(point, a, b):
            return True
        if (a.lat > point.lat) != (b.lat > point.lat):
            crossing = a.lon + (point.lat - a.lat) * (b.lon - a.lon) / (b.lat - a.lat)
            if point.lon < crossing:
                inside = not inside
    return inside


def _on_segment(p: Point, a: Point, b: Point) -> bool:
    cross = (b.lon - a.lon) * (p.lat - a.lat) - (b.lat - a.lat) * (p.lon - a.lon)
    if abs(cross) > 1e-12:
        return False
    return min(a.lon, b.lon) <= p.lon <= max(a.lon, b.lon) and min(a.lat, b.lat) <= p.lat <= max(
        a.lat, b.lat
    )
