"""CAP 1.2 documents written from the OASIS specification's Appendix A examples (homeland
security advisory, severe thunderstorm warning, earthquake report, AMBER alert), with the
areas moved to Vietnam: geocodes MA_DVHC with current administrative unit codes, and the
polygon and circle around Lạng Sơn and Huế. Times are filled in by each test."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

FOLDER = Path(__file__).parent / "cap"


def template(name: str) -> str:
    """An example as a template: {identifier}, {sent} … are filled in by each test."""
    return (FOLDER / name).read_text(encoding="utf-8")


# Lạng Sơn (20) and two of its communes; a ward of Huế (46).
PROVINCE = "20"
THAT_KHE = "06040"
DOAN_KET = "06001"
THUAN_AN = "19900"


def cap_time(at: datetime) -> str:
    """As CAP writes it: seconds, and the zone as ±hh:mm (never Z)."""
    return at.strftime("%Y-%m-%dT%H:%M:%S") + at.strftime("%z")[:3] + ":" + at.strftime("%z")[3:]


# A.1 Homeland Security Advisory System alert: no geocode in the spec (nationwide); here
# the province of Lạng Sơn by its code.
HOMELAND_SECURITY = template("homeland_security.xml")

# A.2 Severe thunderstorm warning, with a Vietnamese info block first and the spec's
# English one after it; the spec's polygon and SAME geocodes become a polygon around Thất
# Khê and the MA_DVHC codes of two communes.
THUNDERSTORM = template("thunderstorm.xml")

# A.3 Earthquake report (an Update of an earlier message): the spec's circle of radius 0
# around the epicentre becomes a 5 km circle in Huế.
EARTHQUAKE = template("earthquake.xml")

# A.4 AMBER alert: the spec's SAME county code becomes Thất Khê's MA_DVHC code.
AMBER = template("amber.xml")


def homeland_security(
    sent: datetime, status: str = "Actual", identifier: str = "43b080713727"
) -> bytes:
    return HOMELAND_SECURITY.format(
        identifier=identifier, sent=cap_time(sent), status=status
    ).encode()


def thunderstorm(
    sent: datetime,
    *,
    identifier: str = "KSTO1055887203",
    status: str = "Actual",
    msg_type: str = "Alert",
    references: str = "",
    severity: str = "Severe",
    expires: datetime | None = None,
    headline: str = "CẢNH BÁO DÔNG MẠNH",
    commune_a: str = THAT_KHE,
    commune_b: str = DOAN_KET,
) -> bytes:
    return THUNDERSTORM.format(
        identifier=identifier,
        sent=cap_time(sent),
        status=status,
        msg_type=msg_type,
        references=f"\n  <references>{references}</references>" if references else "",
        severity=severity,
        expires=cap_time(expires or sent + timedelta(hours=2)),
        headline=headline,
        commune_a=commune_a,
        commune_b=commune_b,
    ).encode()


def earthquake(
    sent: datetime,
    *,
    identifier: str = "TRI13970876.2",
    msg_type: str = "Alert",
    references: str = "",
) -> bytes:
    return EARTHQUAKE.format(
        identifier=identifier,
        sent=cap_time(sent),
        msg_type=msg_type,
        references=f"\n  <references>{references}</references>" if references else "",
    ).encode()


def amber(sent: datetime, commune: str = THAT_KHE) -> bytes:
    return AMBER.format(sent=cap_time(sent), commune=commune).encode()
