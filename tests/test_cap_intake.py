"""CAP alerts posted to coso's endpoint, as an agency's system would: what each becomes,
what is logged, and what is asked of the emergency."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import Engine, select

from channels.endpoints import add_endpoints, read_endpoints_csv
from coso.clock import ManualClock
from coso.config import CapSenderSettings, CapSettings, Settings
from coso.errors import InputError
from coso.units import unit_tree
from dispatcher.cap.areas import Placed, match_areas, placed_endpoints, units_of_alert
from dispatcher.cap.decisions import CANCEL, DECLARE, UPDATE, AlertAction
from dispatcher.cap.document import read_alert
from dispatcher.cap.geometry import Point
from dispatcher.cap.models import ReceivedAlert
from dispatcher.web.app import create_app
from tests.cap_examples import (
    DOAN_KET,
    THAT_KHE,
    THUAN_AN,
    amber,
    cap_time,
    earthquake,
    homeland_security,
    thunderstorm,
)
from tests.conftest import ServerThread
from tests.console import make_user, post_form, signed_in

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 12, 7, 2, 30, tzinfo=UTC)
SENT = NOW.astimezone(HANOI) - timedelta(minutes=1)
KSTO_TOKEN = "ksto-khoa-bi-mat-du-dai-0001"
TRINET_TOKEN = "trinet-khoa-bi-mat-du-dai-02"
KARO_TOKEN = "karo-khoa-bi-mat-du-dai-0003"


@dataclass
class RecordingDesk:
    """Stands for the emergency module: keeps each call and gives references E-1, E-2 …"""

    calls: list[AlertAction] = field(default_factory=list)

    def carry_out(self, call: AlertAction, now: datetime, actor: str) -> str | None:
        self.calls.append(call)
        return f"E-{len(self.calls)}" if call.kind == DECLARE else call.ref


def cap_settings(settings: Settings) -> Settings:
    settings.cap = CapSettings(
        senders=[
            CapSenderSettings(
                name="kttv",
                sender="KSTO@NWS.NOAA.GOV",
                token=KSTO_TOKEN,
                auto_severities=["Extreme", "Severe"],
            ),
            CapSenderSettings(
                name="dongdat",
                sender="trinet@caltech.edu",
                token=TRINET_TOKEN,
                auto_severities=["Minor"],
            ),
            CapSenderSettings(name="congan", sender="KARO@CLETS.DOJ.CA.GOV", token=KARO_TOKEN),
        ]
    )
    return settings


@dataclass
class Service:
    url: str
    engine: Engine
    settings: Settings
    desk: RecordingDesk
    clock: ManualClock

    def post(self, data: bytes, token: str | None = KSTO_TOKEN) -> httpx.Response:
        headers = {"Content-Type": "application/cap+xml"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(f"{self.url}/api/cap/alerts", content=data, headers=headers, timeout=30)

    def log(self) -> list[Any]:
        table = ReceivedAlert.__table__
        with self.engine.connect() as conn:
            return list(conn.execute(select(table).order_by(table.c.id)).all())


@pytest.fixture
def service(engine: Engine, settings: Settings) -> Iterator[Service]:
    desk = RecordingDesk()
    clock = ManualClock(NOW)
    chosen = cap_settings(settings)
    with ServerThread(create_app(engine, chosen, clock=clock, emergencies=desk)) as server:
        yield Service(server.url, engine, chosen, desk, clock)


def test_a_valid_alert_posted_reaches_the_units_of_its_geocodes(service: Service) -> None:
    answer = service.post(thunderstorm(SENT))
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "declared"
    assert answer.json()["identifier"] == "KSTO1055887203"
    [call] = service.desk.calls
    assert call.kind == DECLARE
    assert call.units == (DOAN_KET, THAT_KHE)  # the SAME code is not a unit: left out
    assert call.text.startswith("CẢNH BÁO DÔNG MẠNH")  # the Vietnamese info
    assert call.title == "CẢNH BÁO DÔNG MẠNH"
    assert call.until == SENT + timedelta(hours=2)
    assert call.source == "cap:KSTO1055887203" and not call.drill
    [row] = service.log()
    assert (row.identifier, row.outcome, row.emergency_ref) == ("KSTO1055887203", "declared", "E-1")
    assert row.units == [DOAN_KET, THAT_KHE]


def test_an_update_changes_the_text_and_a_cancel_clears_it(service: Service) -> None:
    assert service.post(thunderstorm(SENT)).json()["outcome"] == "declared"
    first = f"KSTO@NWS.NOAA.GOV,KSTO1055887203,{cap_time(SENT)}"
    later = SENT + timedelta(minutes=10)
    answer = service.post(
        thunderstorm(
            later,
            identifier="KSTO1055887204",
            msg_type="Update",
            references=first,
            headline="DÔNG MẠNH KÈM MƯA ĐÁ",
        )
    )
    assert answer.json()["outcome"] == "updated", answer.text
    update = service.desk.calls[-1]
    assert (update.kind, update.ref) == (UPDATE, "E-1")
    assert update.text.startswith("DÔNG MẠNH KÈM MƯA ĐÁ")

    second = f"KSTO@NWS.NOAA.GOV,KSTO1055887204,{cap_time(later)}"
    cancel = thunderstorm(
        later + timedelta(minutes=5),
        identifier="KSTO1055887205",
        msg_type="Cancel",
        references=f"{first} {second}",
    )
    assert service.post(cancel).json()["outcome"] == "cancelled"
    assert (service.desk.calls[-1].kind, service.desk.calls[-1].ref) == (CANCEL, "E-1")
    assert [r.outcome for r in service.log()] == ["declared", "updated", "cancelled"]


def test_an_expired_alert_sends_nothing(service: Service) -> None:
    old = SENT - timedelta(hours=3)
    answer = service.post(thunderstorm(old, expires=old + timedelta(hours=1)))
    assert answer.status_code == 200
    assert answer.json()["outcome"] == "expired"
    assert service.desk.calls == []
    assert service.log()[0].identifier == "KSTO1055887203"


def test_a_test_or_exercise_alert_goes_as_a_drill(service: Service) -> None:
    service.post(thunderstorm(SENT, status="Test"))
    service.post(thunderstorm(SENT, identifier="KSTO-EX-1", status="Exercise"))
    assert [c.drill for c in service.desk.calls] == [True, True]
    service.post(thunderstorm(SENT, identifier="KSTO-DRAFT-1", status="Draft"))
    assert len(service.desk.calls) == 2
    assert service.log()[-1].outcome == "ignored"


@pytest.mark.parametrize(
    ("document", "token", "status", "field"),
    [
        (thunderstorm(SENT), None, 401, "Authorization"),
        (thunderstorm(SENT), "khoa-sai-khong-ai-co-ca-0000", 401, "Authorization"),
        (b"<html><body>tin</body></html>", KSTO_TOKEN, 400, "phần tử gốc"),
        (b"\x00" * 64, KSTO_TOKEN, 400, "tài liệu"),
        (thunderstorm(SENT, severity="Dangerous"), KSTO_TOKEN, 400, "alert/info[1]/severity"),
        (thunderstorm(SENT), TRINET_TOKEN, 400, "alert/sender"),  # another agency's key
        (thunderstorm(SENT, commune_a="99999", commune_b="99998"), KSTO_TOKEN, 400, "area"),
    ],
    ids=["no-key", "wrong-key", "not-cap", "not-xml", "schema", "other-sender", "no-unit"],
)
def test_a_refused_document_is_logged_and_nothing_is_sent(
    service: Service, document: bytes, token: str | None, status: int, field: str
) -> None:
    answer = service.post(document, token)
    assert answer.status_code == status, answer.text
    assert answer.json()["outcome"] == "refused"
    assert answer.json()["field"] == field
    assert service.desk.calls == []
    [row] = service.log()
    assert row.outcome == "refused" and row.reason
    if document.startswith(b"<?xml"):  # what could be read of it is kept
        assert row.identifier == "KSTO1055887203"
        assert row.document.encode() == document


def test_the_same_alert_twice_is_declared_once(service: Service) -> None:
    service.post(thunderstorm(SENT))
    assert service.post(thunderstorm(SENT)).json()["outcome"] == "repeated"
    assert len(service.desk.calls) == 1


def test_the_same_alert_posted_at_once_several_times_is_declared_once(service: Service) -> None:
    document = thunderstorm(SENT)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: service.post(document), range(4)))
    assert sorted(a.json()["outcome"] for a in answers) == ["declared"] + ["repeated"] * 3
    assert len(service.desk.calls) == 1


def test_an_alert_outside_auto_mode_waits_for_a_person_in_the_console(
    service: Service,
) -> None:
    make_user(service.engine, "duyet", ["editor"], ["20"])
    make_user(service.engine, "xem", ["approver"], ["20"])  # approves content, not emergencies
    make_user(service.engine, "xa-khac", ["operator"], ["06112"])  # Bình Gia: not in the area
    answer = service.post(amber(SENT), KARO_TOKEN)
    assert answer.json()["outcome"] == "waiting"
    assert service.desk.calls == []
    row = service.log()[0]
    with signed_in(service.url, "xem") as viewer:
        page = viewer.get("/cap")
        assert page.status_code == 200 and "Amber Alert in Los Angeles County" in page.text
        assert "Duyệt và phát ngay" not in page.text
        refused = post_form(viewer, "/cap", f"/cap/{row.id}/approve", {})
        assert refused.status_code == 403
    with signed_in(service.url, "xa-khac") as elsewhere:
        assert "Amber Alert" not in elsewhere.get("/cap").text
        refused = post_form(elsewhere, "/cap", f"/cap/{row.id}/approve", {})
        assert refused.status_code == 403
    assert service.desk.calls == []
    with signed_in(service.url, "duyet") as approver:
        done = post_form(approver, "/cap", f"/cap/{row.id}/approve", {})
        assert done.status_code == 303
        page = approver.get("/cap")
        assert "đã phát khẩn cấp" in page.text
    [call] = service.desk.calls
    assert call.kind == DECLARE and call.units == (THAT_KHE,)
    assert service.log()[0].decided_by == "duyet"


def test_a_waiting_alert_can_be_refused_and_then_sends_nothing(service: Service) -> None:
    make_user(service.engine, "duyet", ["operator"], [THAT_KHE])
    service.post(amber(SENT), KARO_TOKEN)
    row = service.log()[0]
    with signed_in(service.url, "duyet") as approver:
        post_form(approver, "/cap", f"/cap/{row.id}/reject", {"note": "tin không liên quan"})
        again = post_form(approver, "/cap", f"/cap/{row.id}/approve", {})
        assert again.status_code == 400 and "không còn chờ duyệt" in again.text
    assert service.desk.calls == []
    assert service.log()[0].outcome == "rejected"


def test_a_circle_reaches_the_units_of_the_endpoints_inside_it(service: Service) -> None:
    add_endpoints(
        service.engine,
        [
            {
                "channel": "web",
                "address": f"bulletin:{THUAN_AN}",
                "unit_code": THUAN_AN,
                "latitude": 16.47,
                "longitude": 107.60,
            },
            {
                "channel": "web",
                "address": f"bulletin:{THAT_KHE}",
                "unit_code": THAT_KHE,
                "latitude": 22.25,
                "longitude": 106.47,
            },
        ],
        NOW,
    )
    answer = service.post(earthquake(SENT), TRINET_TOKEN)
    assert answer.json()["outcome"] == "declared", answer.text
    assert service.desk.calls[0].units == (THUAN_AN,)


def test_geocodes_and_shapes_map_to_units(engine: Engine) -> None:
    alert = read_alert(thunderstorm(SENT))
    inside = Placed(7, Point(22.25, 106.45), "06019")
    outside = Placed(8, Point(21.0, 105.8), "00001")
    match = match_areas(alert.areas, ["MA_DVHC"], unit_tree(engine), [inside, outside])
    assert match.units == tuple(sorted({THAT_KHE, DOAN_KET, "06019"}))
    assert match.endpoint_ids == (7,)
    province = units_of_alert(engine, read_alert(homeland_security(SENT)).areas, ["MA_DVHC"])
    assert province.units == ("20",)
    unknown = units_of_alert(
        engine, read_alert(thunderstorm(SENT, commune_b="99999")).areas, ["MA_DVHC"]
    )
    assert unknown.units == (THAT_KHE,) and unknown.unknown_codes == ("99999",)


def test_endpoints_take_their_coordinates_from_the_csv_and_bad_ones_are_named(
    engine: Engine, tmp_path: Path
) -> None:
    good = tmp_path / "endpoints.csv"
    good.write_text(
        "channel,address,name,unit,latitude,longitude\n"
        f'web,bulletin:{THUAN_AN},Bản tin Thuận An,{THUAN_AN},"16,47",107.60\n'
        f"web,bulletin:{THAT_KHE},Bản tin Thất Khê,{THAT_KHE},,\n",
        encoding="utf-8",
    )
    rows = read_endpoints_csv(engine, good)
    assert add_endpoints(engine, rows, NOW) == 2
    assert [(p.endpoint_id > 0, p.point, p.unit_code) for p in placed_endpoints(engine)] == [
        (True, Point(16.47, 107.60), THUAN_AN)
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "channel,address,name,unit,latitude,longitude\n"
        f"boards,screen:cho-that-khe,Bảng chợ,{THAT_KHE},22.2,106.4\n"
        f"boards,screen:ubnd-that-khe,Bảng UBND,{THAT_KHE},122.2,106.4\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as caught:
        read_endpoints_csv(engine, bad)
    assert (caught.value.field, caught.value.value, caught.value.line) == ("latitude", "122.2", 3)


def test_a_plan_file_places_its_endpoints(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    from schedules.importer import import_plan_file
    from tests.plans import write_plan

    plan = f"""
[plan]
number = "5/KH-UBND"
title = "Loa xã Thuận An"
organisation = "UBND phường Thuận An"
period_start = 2026-12-01
period_end = 2026-12-31

[[endpoints]]
channel = "web"
address = "bulletin:{THUAN_AN}"
unit = "{THUAN_AN}"
latitude = 16.47
longitude = 107.60
"""
    import_plan_file(engine, settings, write_plan(tmp_path, plan), NOW)
    assert [p.point for p in placed_endpoints(engine)] == [Point(16.47, 107.60)]
    half = plan.replace("longitude = 107.60\n", "")
    with pytest.raises(Exception, match="latitude and longitude together"):
        import_plan_file(engine, settings, write_plan(tmp_path, half, "half.toml"), NOW)


def test_an_oversized_document_is_refused_and_logged(service: Service) -> None:
    # 2 × 300 kB of description: above the 512 KiB limit, below what the server reads
    big = thunderstorm(SENT).replace(b"</description>", b" " * 300_000 + b"</description>")
    answer = service.post(big)
    assert answer.status_code == 400
    assert answer.json()["field"] == "tài liệu"
    assert service.desk.calls == []
    assert [r.outcome for r in service.log()] == ["refused"]
