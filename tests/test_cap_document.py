"""CAP 1.2 documents read as the OASIS specification writes them; bad ones refused with
the element and value named."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coso.errors import InputError
from dispatcher.cap.document import read_alert
from dispatcher.cap.geometry import (
    Circle,
    Point,
    Polygon,
    distance_km,
    in_circle,
    in_polygon,
    parse_circle,
    parse_polygon,
)
from tests.cap_examples import (
    DOAN_KET,
    THAT_KHE,
    amber,
    earthquake,
    homeland_security,
    thunderstorm,
)

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
SENT = datetime(2026, 12, 7, 9, 30, tzinfo=HANOI)


def test_the_specifications_examples_are_read_whole() -> None:
    alert = read_alert(homeland_security(SENT))
    assert (alert.identifier, alert.sender, alert.status, alert.msg_type) == (
        "43b080713727",
        "hsas@dhs.gov",
        "Actual",
        "Alert",
    )
    assert alert.sent == SENT
    info = alert.chosen_info()
    assert info is not None and info.headline == "Homeland Security Sets Code ORANGE"
    assert alert.areas[0].geocodes[0].value == "20"

    quake = read_alert(
        earthquake(
            SENT,
            msg_type="Update",
            references="trinet@caltech.edu,TRI13970876.1,2026-12-07T09:00:00+07:00",
        )
    )
    assert quake.references[0].identifier == "TRI13970876.1"
    assert quake.areas[0].circles == ("16.4637,107.5909 5",)
    assert read_alert(amber(SENT)).chosen_info().severity == "Severe"  # type: ignore[union-attr]


def test_the_vietnamese_info_is_chosen_and_every_language_keeps_its_text() -> None:
    alert = read_alert(thunderstorm(SENT))
    info = alert.chosen_info()
    assert info is not None and info.language == "vi-VN"
    assert info.text().startswith("CẢNH BÁO DÔNG MẠNH")
    assert "trú ẩn" in info.text()
    assert set(alert.texts()) == {"vi-VN", "en-US"}
    assert "TAKE COVER" in alert.texts()["en-US"]
    assert alert.expires() == SENT + timedelta(hours=2)
    # The same area under both languages counts once; its codes are all there.
    assert {g.value for a in alert.areas for g in a.geocodes} >= {THAT_KHE, DOAN_KET}


def test_without_a_vietnamese_info_the_first_is_chosen() -> None:
    info = read_alert(amber(SENT)).chosen_info()
    assert info is not None and info.event == "Child Abduction"


def refusal(data: bytes) -> InputError:
    with pytest.raises(InputError) as caught:
        read_alert(data)
    return caught.value


def test_a_value_outside_the_schema_is_refused_naming_the_element_and_value() -> None:
    error = refusal(homeland_security(SENT, status="Actuall"))
    assert error.field == "alert/status"
    assert error.value == "Actuall"
    assert "lược đồ CAP 1.2" in error.reason
    assert "không thuộc các giá trị được phép: 'Actual', 'Exercise'" in error.reason


def test_a_missing_required_element_is_refused_naming_it() -> None:
    data = homeland_security(SENT).replace(b"<scope>Public</scope>", b"")
    error = refusal(data)
    assert "scope" in error.reason


def test_a_time_without_its_zone_is_refused() -> None:
    data = homeland_security(SENT).replace(b"+07:00</sent>", b"</sent>")
    assert refusal(data).field == "alert/sent"


def test_a_document_that_is_not_cap_is_refused() -> None:
    error = refusal(b"<rss version='2.0'><channel><title>tin</title></channel></rss>")
    assert error.field == "phần tử gốc" and error.value == "rss"
    assert refusal(b"not xml at all").field == "tài liệu"
    assert refusal(b"").field == "tài liệu"
    cap11 = homeland_security(SENT).replace(b"cap:1.2", b"cap:1.1")
    assert "CAP 1.2" in refusal(cap11).reason


def test_a_document_with_a_dtd_or_entities_is_refused_and_nothing_is_expanded() -> None:
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&b;</identifier></alert>"""
    assert refusal(bomb).field == "DOCTYPE"
    external = b"""<?xml version="1.0"?>
<!DOCTYPE alert SYSTEM "http://127.0.0.1:9/x.dtd">
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>"""
    assert refusal(external).field == "DOCTYPE"


def test_an_oversized_document_is_refused_before_it_is_parsed() -> None:
    data = homeland_security(SENT).replace(b"</description>", b" " * 600_000 + b"</description>")
    error = refusal(data)
    assert error.field == "tài liệu" and "giới hạn" in error.reason


def test_an_identifier_with_spaces_or_an_update_without_references_is_refused() -> None:
    assert refusal(homeland_security(SENT, identifier="43b 0807")).field == "alert/identifier"
    assert refusal(thunderstorm(SENT, msg_type="Update")).field == "alert/references"


def test_a_bad_shape_is_refused_naming_it() -> None:
    with pytest.raises(InputError) as caught:
        parse_polygon("area[1]/polygon", "22.3,106.4 22.2,106.4 22.2,106.5 22.3,106.5")
    assert "khép kín" in caught.value.reason
    with pytest.raises(InputError):
        parse_circle("area[1]/circle", "95,106 5")
    with pytest.raises(InputError):
        parse_circle("area[1]/circle", "21,106 -1")


lats = st.floats(min_value=-60, max_value=60, allow_nan=False)
lons = st.floats(min_value=-170, max_value=170, allow_nan=False)


@given(lats, lons, st.floats(min_value=0.1, max_value=500), st.floats(min_value=0, max_value=0.99))
def test_a_point_nearer_than_the_radius_is_in_the_circle(
    lat: float, lon: float, radius: float, share: float
) -> None:
    centre = Point(lat, lon)
    # Due north by share × radius: the distance along a meridian is exact.
    north = Point(lat + (share * radius) / 111.195, lon)
    assert in_circle(north, Circle(centre, radius))
    far = Point(lat + (radius * 1.05 + 0.01) / 111.195, lon)
    assert not in_circle(far, Circle(centre, radius))


@given(lats, lons, lats, lons)
def test_distance_is_symmetric_and_zero_only_at_the_same_point(
    a_lat: float, a_lon: float, b_lat: float, b_lon: float
) -> None:
    a, b = Point(a_lat, a_lon), Point(b_lat, b_lon)
    assert distance_km(a, b) == pytest.approx(distance_km(b, a))
    assert distance_km(a, a) == 0


def box(lat: float, lon: float, height: float, width: float, clockwise: bool) -> Polygon:
    corners = [
        Point(lat, lon),
        Point(lat + height, lon),
        Point(lat + height, lon + width),
        Point(lat, lon + width),
    ]
    if clockwise:
        corners.reverse()
    return Polygon((*corners, corners[0]))


@given(
    lats,
    lons,
    st.floats(min_value=0.01, max_value=5),
    st.floats(min_value=0.01, max_value=5),
    st.floats(min_value=-0.5, max_value=1.5),
    st.floats(min_value=-0.5, max_value=1.5),
    st.booleans(),
)
def test_a_point_is_in_a_box_exactly_when_it_lies_between_its_sides(
    lat: float, lon: float, height: float, width: float, u: float, v: float, clockwise: bool
) -> None:
    point = Point(lat + u * height, lon + v * width)
    strictly_in = 0.001 < u < 0.999 and 0.001 < v < 0.999
    strictly_out = u < -0.001 or u > 1.001 or v < -0.001 or v > 1.001
    inside = in_polygon(point, box(lat, lon, height, width, clockwise))
    if strictly_in:
        assert inside
    if strictly_out:
        assert not inside
