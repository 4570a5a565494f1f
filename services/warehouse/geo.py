"""Points on the Earth and the great-circle distance between them. Pure Python."""

from __future__ import annotations

import math
from dataclasses import dataclass

from runtime.kernel.validation import Validator

# IUGG mean radius: the sphere that best fits the ellipsoid; the haversine distance on
# it is within about 0.5% of the geodesic one, plenty for "nearest warehouse".
EARTH_MEAN_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class GeoPoint:
    """WGS 84 coordinates in decimal degrees."""

    latitude: float
    longitude: float


def great_circle_km(a: GeoPoint, b: GeoPoint) -> float:
    """The haversine distance between two points, in kilometres."""
    lat_a, lat_b = math.radians(a.latitude), math.radians(b.latitude)
    half_dlat = (lat_b - lat_a) / 2
    half_dlon = math.radians(b.longitude - a.longitude) / 2
    h = math.sin(half_dlat) ** 2 + math.cos(lat_a) * math.cos(lat_b) * math.sin(half_dlon) ** 2
    # min() guards asin against rounding just above 1 for antipodal points.
    return 2 * EARTH_MEAN_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def validate_point(point: GeoPoint | None, check: Validator, field: str) -> GeoPoint | None:
    """Record a missing point or out-of-range coordinates under ``field``."""
    check.require(point is not None, field, "is required")
    if point is None:
        return None
    check.require(
        math.isfinite(point.latitude) and -90 <= point.latitude <= 90,
        f"{field}.latitude",
        "must be between -90 and 90 degrees",
    )
    check.require(
        math.isfinite(point.longitude) and -180 <= point.longitude <= 180,
        f"{field}.longitude",
        "must be between -180 and 180 degrees",
    )
    return point
