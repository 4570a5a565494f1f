"""Great-circle distances and coordinate checks of the warehouse service."""

from __future__ import annotations

import math

import pytest

from runtime.kernel.errors import InvalidArgument
from runtime.kernel.validation import Validator
from warehouse.geo import EARTH_MEAN_RADIUS_KM, GeoPoint, great_circle_km, validate_point

HAMBURG = GeoPoint(53.5511, 9.9937)
ROTTERDAM = GeoPoint(51.9244, 4.4777)


def test_hamburg_to_rotterdam_is_about_410_km() -> None:
    assert great_circle_km(HAMBURG, ROTTERDAM) == pytest.approx(410, rel=0.01)


def test_distance_is_symmetric_and_zero_to_itself() -> None:
    assert great_circle_km(HAMBURG, ROTTERDAM) == great_circle_km(ROTTERDAM, HAMBURG)
    assert great_circle_km(HAMBURG, HAMBURG) == 0


def test_antipodes_are_half_the_circumference_apart() -> None:
    assert great_circle_km(GeoPoint(0, 0), GeoPoint(0, 180)) == pytest.approx(
        math.pi * EARTH_MEAN_RADIUS_KM
    )
    assert great_circle_km(GeoPoint(90, 0), GeoPoint(-90, 0)) == pytest.approx(
        math.pi * EARTH_MEAN_RADIUS_KM
    )


def test_crossing_the_antimeridian_takes_the_short_way() -> None:
    # Fiji to Samoa: about 1,150 km over the 180th meridian, not 39,000 km around.
    assert great_circle_km(GeoPoint(-18.1, 178.4), GeoPoint(-13.8, -171.8)) < 1300


@pytest.mark.parametrize(
    ("point", "fields"),
    [
        (None, {"location"}),
        (GeoPoint(90.5, 0), {"location.latitude"}),
        (GeoPoint(0, -180.5), {"location.longitude"}),
        (GeoPoint(math.nan, math.inf), {"location.latitude", "location.longitude"}),
    ],
)
def test_bad_points_name_their_field(point: GeoPoint | None, fields: set[str]) -> None:
    check = Validator()
    validate_point(point, check, "location")
    with pytest.raises(InvalidArgument) as error:
        check.raise_if_invalid()
    assert {v.field for v in error.value.violations} == fields


def test_the_extremes_are_valid_points() -> None:
    check = Validator()
    validate_point(GeoPoint(-90, 180), check, "location")
    check.raise_if_invalid()
