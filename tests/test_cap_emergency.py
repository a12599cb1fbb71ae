"""CAP alerts posted to coso end to end: the emergency they declare reaches the bulletin,
screens and phones of their geocodes' communes, an Update changes its words everywhere, a
Cancel clears it, Test alerts reach test screens only, an expired or refused one sends
nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import Engine, func, select

from channels.boards.programme import programmes
from channels.endpoints import Endpoint, add_endpoints, mark_test
from channels.web.bulletin import bulletin
from coso.clock import ManualClock
from coso.config import Settings
from dispatcher.emergency import find
from dispatcher.models import Delivery
from dispatcher.service import Dispatcher
from dispatcher.web.app import create_app
from schedules.emergencies import Emergency
from tests.cap_examples import DOAN_KET, THAT_KHE, cap_time, thunderstorm
from tests.conftest import ServerThread
from tests.sms import e164, import_recipients, phone, sms_settings, write_recipients
from tests.test_cap_intake import KSTO_TOKEN, cap_settings
from tests.twilio_server import TwilioServer

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 12, 7, 2, 30, tzinfo=UTC)
SENT = NOW.astimezone(HANOI) - timedelta(minutes=1)
ELSEWHERE = "06046"  # Tràng Định: in Lạng Sơn, not in the alert's area
FIRST = f"KSTO@NWS.NOAA.GOV,KSTO1055887203,{cap_time(SENT)}"


# People texted: two in the alert's communes, one elsewhere.
PHONES = {e164(1): THAT_KHE, e164(2): DOAN_KET, e164(3): ELSEWHERE}


class Agency:
    def __init__(
        self,
        url: str,
        engine: Engine,
        settings: Settings,
        clock: ManualClock,
        gateway: TwilioServer,
    ) -> None:
        self.url, self.engine, self.settings, self.clock = url, engine, settings, clock
        self.gateway = gateway

    def post(self, data: bytes, token: str | None = KSTO_TOKEN) -> httpx.Response:
        headers = {"Content-Type": "application/cap+xml"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(f"{self.url}/api/cap/alerts", content=data, headers=headers, timeout=60)

    def send(self) -> None:
        dispatcher = Dispatcher(self.engine, self.settings, self.clock)
        dispatcher.tick()
        dispatcher.stop()

    def reached(self, channel: str) -> set[str]:
        """Addresses with a delivery on `channel`."""
        with self.engine.connect() as conn:
            return set(
                conn.scalars(
                    select(Endpoint.__table__.c.address)
                    .join(Delivery.__table__, Delivery.__table__.c.endpoint_id == Endpoint.id)
                    .where(Delivery.__table__.c.channel == channel)
                )
            )

    def shown(self, at: datetime) -> dict[str, list[str]]:
        """Each screen's programme now: the texts it shows."""
        table = Endpoint.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.id, table.c.address).where(table.c.channel == "boards")
            ).all()
            screens = {eid: address for eid, address in rows}
            found = programmes(conn, list(screens), at)
        return {screens[k]: [str(i.get("text", i)) for i in v] for k, v in found.items()}

    def items(self, at: datetime) -> dict[str, list[tuple[str, str]]]:
        """Each screen that shows something now: the (title, text) of its items."""
        table = Endpoint.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.id, table.c.address).where(table.c.channel == "boards")
            ).all()
            found = programmes(conn, [eid for eid, _ in rows], at)
        names = dict(rows)
        return {names[k]: [(i["title"], i["text"]) for i in v] for k, v in found.items() if v}

    def texted(self) -> dict[str, list[str]]:
        """Each number the gateway was asked to text: the bodies, in order."""
        found: dict[str, list[str]] = {}
        for message in list(self.gateway.messages.values()):  # in the order they came
            found.setdefault(message.to, []).append(message.body)
        return found

    def emergencies(self) -> int:
        with self.engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(Emergency.__table__)) or 0


@pytest.fixture
def agency(engine: Engine, settings: Settings, tmp_path: Path) -> Iterator[Agency]:
    chosen = cap_settings(settings)
    chosen.media.dir = str(tmp_path / "media")
    add_endpoints(
        engine,
        [
            {"channel": "web", "address": f"bulletin:{THAT_KHE}", "unit_code": THAT_KHE},
            {"channel": "web", "address": f"bulletin:{ELSEWHERE}", "unit_code": ELSEWHERE},
            {"channel": "boards", "address": "screen:cho-that-khe", "unit_code": THAT_KHE},
            {"channel": "boards", "address": "screen:doan-ket", "unit_code": DOAN_KET},
            {"channel": "boards", "address": "screen:trang-dinh", "unit_code": ELSEWHERE},
            {"channel": "boards", "address": "screen:thu-that-khe", "unit_code": THAT_KHE},
        ],
        NOW,
    )
    mark_test(engine, "boards", ["screen:thu-that-khe"], True)
    rows = [
        {"name": f"CD {n}", "phone": phone(n), "unit": unit, "groups": "xa"}
        for n, unit in zip((1, 2, 3), PHONES.values(), strict=True)
    ]
    import_recipients(engine, write_recipients(tmp_path / "ds.csv", rows))
    clock = ManualClock(NOW)
    with TwilioServer() as gateway:
        sms_settings(chosen, gateway.url, status_callbacks=False)
        with ServerThread(create_app(engine, chosen, clock=clock)) as server:
            yield Agency(server.url, engine, chosen, clock, gateway)


def test_an_alert_reaches_its_communes_an_update_changes_it_and_a_cancel_clears_it(
    agency: Agency,
) -> None:
    answer = agency.post(thunderstorm(SENT))
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "declared"
    ref = answer.json()["emergency_ref"]
    emergency = find(agency.engine, ref)
    assert emergency.source == "cap:KSTO1055887203"
    agency.send()
    assert agency.reached("boards") == {
        "screen:cho-that-khe",
        "screen:doan-ket",
        "screen:thu-that-khe",
    }
    assert agency.reached("web") == {f"bulletin:{THAT_KHE}"}
    posts = bulletin(agency.engine, now=NOW)
    assert len(posts) == 1 and "CẢNH BÁO DÔNG MẠNH" in posts[0]["body_html"]
    assert posts[0]["pinned"]
    area = {"screen:cho-that-khe", "screen:doan-ket", "screen:thu-that-khe"}
    shown = agency.items(NOW)
    assert set(shown) == area
    for ((title, text),) in shown.values():
        assert title == "CẢNH BÁO DÔNG MẠNH" and text.startswith("CẢNH BÁO DÔNG MẠNH")
    texted = agency.texted()
    assert set(texted) == {e164(1), e164(2)}  # not the number elsewhere
    assert all(len(b) == 1 and "CẢNH BÁO DÔNG MẠNH" in b[0] for b in texted.values())

    later = NOW + timedelta(minutes=10)
    agency.clock.set(later)
    update = thunderstorm(
        SENT + timedelta(minutes=10),
        identifier="KSTO1055887204",
        msg_type="Update",
        references=FIRST,
        headline="DÔNG MẠNH KÈM MƯA ĐÁ",
    )
    updated = agency.post(update).json()
    assert (updated["outcome"], updated["emergency_ref"]) == ("updated", ref), updated
    agency.send()
    pinned = [p for p in bulletin(agency.engine, now=later) if p["pinned"]]
    assert len(pinned) == 1 and "KÈM MƯA ĐÁ" in pinned[0]["body_html"]
    assert pinned[0]["title"] == "DÔNG MẠNH KÈM MƯA ĐÁ"
    # The screens show the new words alone, under the new headline.
    shown = agency.items(later)
    assert set(shown) == area
    for ((title, text),) in shown.values():
        assert title == "DÔNG MẠNH KÈM MƯA ĐÁ"
        assert text.startswith("DÔNG MẠNH KÈM MƯA ĐÁ") and "CẢNH BÁO DÔNG MẠNH" not in text
    # The same people are texted the new words.
    texted = agency.texted()
    assert set(texted) == {e164(1), e164(2)}
    assert all(len(b) == 2 and "KÈM MƯA ĐÁ" in b[1] for b in texted.values())

    end = later + timedelta(minutes=5)
    agency.clock.set(end)
    cancel = thunderstorm(
        SENT + timedelta(minutes=15),
        identifier="KSTO1055887205",
        msg_type="Cancel",
        references=FIRST,
    )
    assert agency.post(cancel).json()["outcome"] == "cancelled"
    assert find(agency.engine, ref).state == "cancelled"
    assert not any(p["pinned"] for p in bulletin(agency.engine, now=end))
    assert all(items == [] for items in agency.shown(end).values())
    agency.send()
    texted = agency.texted()
    assert set(texted) == {e164(1), e164(2)}
    assert all(len(b) == 3 and b[2].startswith(f"HUỶ tin khẩn cấp {ref}") for b in texted.values())


def test_a_test_alert_reaches_only_test_screens(agency: Agency) -> None:
    answer = agency.post(thunderstorm(SENT, status="Test"))
    assert answer.json()["outcome"] == "declared", answer.text
    agency.send()
    assert agency.reached("boards") == {"screen:thu-that-khe"}
    assert agency.reached("web") == set()
    assert agency.gateway.creates == []  # no number is a test one


@pytest.mark.parametrize(
    ("document", "token"),
    [
        (thunderstorm(SENT - timedelta(hours=3), expires=SENT - timedelta(hours=1)), KSTO_TOKEN),
        (thunderstorm(SENT), None),
        (b"<feed xmlns='http://www.w3.org/2005/Atom'/>", KSTO_TOKEN),
        (thunderstorm(SENT, status="Actuall"), KSTO_TOKEN),
    ],
    ids=["expired", "no-credentials", "not-cap", "schema"],
)
def test_an_expired_or_refused_alert_sends_nothing(
    agency: Agency, document: bytes, token: str | None
) -> None:
    answer = agency.post(document, token)
    assert answer.json()["outcome"] in ("expired", "refused")
    agency.send()
    assert agency.emergencies() == 0
    assert agency.reached("boards") == set() and agency.reached("web") == set()
    assert agency.gateway.creates == []
