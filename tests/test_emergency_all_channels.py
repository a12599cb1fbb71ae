"""The emergency everyone must be able to send: while a normal item plays on 20 players, one
emergency goes to every channel of the commune — the players cut what they play, 100 SMS
go out inside quiet hours at the channel's rate, two screens switch to it, the bulletin
pins it — and the progress page counts what the log says. Cancelling it stops the players,
clears the screens, unpins the bulletin and texts the cancellation."""

from __future__ import annotations

import bisect
import math
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from channels.boards.pairing import issue_token
from channels.boards.tables import BoardDisplay
from channels.endpoints import add_endpoints
from channels.sms.recipients import record_opt_out
from channels.web.bulletin import bulletin
from content.models import ContentItem
from coso.clock import SystemClock, as_utc, zone
from coso.config import Settings
from coso.db import write
from dispatcher.emergency import (
    EmergencyRequest,
    cancel,
    declare,
    emergency_log,
    find,
    last_states,
    progress,
)
from dispatcher.models import ActivityEntry, Delivery
from tests.console import make_user, signed_in
from tests.helpers import wait_for
from tests.loudspeakers import (
    clip,
    import_broadcast,
    players,
    running_coso,
    slot_in,
    speaker_settings,
)
from tests.screens import Screen
from tests.sms import e164, import_recipients, phone, sms_settings, write_recipients
from tests.twilio_server import TwilioServer

PLAYERS = [f"loa-{n:02d}" for n in range(20)]
RECIPIENTS = 100
RATE = 40  # SMS segments per second
SOON = 2.0  # seconds: the players and screens act on it within this


def _quiet_now(settings: Settings) -> dict[str, str]:
    """Quiet hours from an hour ago to an hour from now, in the zone emergencies use."""
    local = SystemClock().now().astimezone(zone(settings.timer.default_zone))
    return {
        "quiet_start": (local - timedelta(hours=1)).strftime("%H:%M"),
        "quiet_end": (local + timedelta(hours=1)).strftime("%H:%M"),
    }


def _page_totals(html: str) -> dict[str, tuple[int, int, int]]:
    rows = re.findall(
        r'<tr class="total" data-channel="([a-z]+)">.*?class="reached[^"]*">(\d+)</td>'
        r'.*?class="pending">(\d+)</td>.*?class="failed[^"]*">(\d+)</td>',
        html,
        re.S,
    )
    return {c: (int(a), int(b), int(f)) for c, a, b, f in rows}


def test_one_emergency_reaches_players_sms_screens_and_bulletin_and_cancel_stops_it(
    engine: Engine, settings: Settings, broker_url: str, tmp_path: Path
) -> None:
    settings = speaker_settings(settings, broker_url, tmp_path)
    import_broadcast(engine, settings, tmp_path, PLAYERS, slot_in(2), clip(tmp_path, 60, 330))
    now = SystemClock().now()
    add_endpoints(
        engine,
        [
            {"channel": "boards", "address": "screen:cho-06040", "unit_code": "06040"},
            {"channel": "boards", "address": "screen:ubnd-06040", "unit_code": "06040"},
            {"channel": "web", "address": "bulletin:06040", "unit_code": "06040"},
        ],
        now,
    )
    tokens = {n: issue_token(engine, f"screen:{n}", now) for n in ("cho-06040", "ubnd-06040")}
    rows = [
        {"name": f"CD {n}", "phone": phone(n), "unit": "06040", "groups": "xa"}
        for n in range(RECIPIENTS + 1)
    ]
    import_recipients(engine, write_recipients(tmp_path / "ds.csv", rows))
    with write(engine) as conn:  # one number said STOP: an emergency leaves it alone
        record_opt_out(conn, e164(RECIPIENTS), now, "sms", "STOP")
    make_user(engine, "chu-tich", ["administrator"], [])
    with TwilioServer() as gateway:
        sms_settings(settings, gateway.url, rate_per_second=RATE, **_quiet_now(settings))
        group = players(settings, PLAYERS, tmp_path).start()
        screens: list[Screen] = []
        try:
            with running_coso(engine, settings):
                web = settings.server.public_url
                screens = [Screen(web, n, t).start() for n, t in tokens.items()]
                wait_for(
                    lambda: all(group.player(p).current is not None for p in PLAYERS),
                    60,
                    "the normal item playing on every player",
                )
                wait_for(lambda: all(s.shown for s in screens), 20, "the screens connected")
                storm = clip(tmp_path, 20, 880)
                # The chairman asks for it: every "within 2 s" counts from here, the time
                # `declare` takes (its checks, the clip prepared, the deliveries written)
                # included.
                asked = time.time()
                ref = declare(
                    engine,
                    settings,
                    EmergencyRequest(
                        text="Bão số 3 đổ bộ đêm nay. Ở trong nhà, tránh xa bờ sông.",
                        units=["06040"],
                        audio=storm,
                        title="Cảnh báo bão số 3",
                    ),
                    SystemClock().now(),
                    "chu-tich",
                )
                # Every player cut the normal item for it, by the players' own records.
                wait_for(
                    lambda: all(len(group.player(p).sink.played) == 2 for p in PLAYERS),  # type: ignore[attr-defined]
                    30,
                    "the emergency playing on every player",
                )
                for p in PLAYERS:
                    started = group.player(p).sink.played[1][1]  # type: ignore[attr-defined]
                    assert started - asked <= SOON, f"{p} began it {started - asked:.2f}s on"
                # Both screens show it, by their own display records.
                wait_for(
                    lambda: all(
                        (s.showing() or {}).get("priority") == "emergency" for s in screens
                    ),
                    30,
                    "the emergency on both screens",
                )
                wait_for(lambda: _displays(engine) >= 2, 30, "both screens' display records")
                with engine.connect() as conn:
                    shown = conn.execute(select(BoardDisplay.__table__)).all()
                for record in shown:
                    on = as_utc(record.started_at).timestamp() - asked
                    assert on <= SOON, f"endpoint {record.endpoint_id} showed it {on:.2f}s on"
                # Every SMS out, inside quiet hours, at the channel's rate as the gateway
                # counts it: in no second more than the rate lets out, and the last one as
                # soon as the rate allows. The sender lets them go 1/rate apart; the gateway
                # counts them as they arrive, and on a busy machine the time each takes on its
                # way varies by some milliseconds, which moves one or a few into a neighbouring
                # second: a tenth of the rate, and one, allowed for that. (Letting a second's
                # worth go at its start, as senders once did, put 46 in one second at 40/s.)
                wait_for(lambda: len(gateway.creates) == RECIPIENTS, 60, "every SMS sent")
                assert e164(RECIPIENTS) not in gateway.creates  # opted out: honoured
                times = sorted(t for _to, t, status in gateway.attempts if status == 201)
                per_second = _messages_per_second(gateway)
                busiest = _busiest_second(times)
                allowed = per_second + 1 + per_second // 10
                assert busiest <= allowed, f"{busiest} SMS in one second at {per_second}/s"
                took = times[-1] - asked
                assert took <= math.ceil(RECIPIENTS / per_second) + 2, (
                    f"the last SMS {took:.1f}s on"
                )
                # The bulletin pins it.
                wait_for(lambda: _pinned(engine), 30, "the warning pinned on the bulletin")
                posts = bulletin(engine, now=SystemClock().now())
                assert posts[0]["pinned"] and posts[0]["plan_number"] == ref
                # The progress page counts what the log says.
                wait_for(lambda: _settled(engine, ref), 60, "every delivery's first outcome")
                with signed_in(web, "chu-tich") as console:
                    page = console.get(f"/emergencies/{ref}/progress")
                assert page.status_code == 200
                logged = last_states(engine, ref)
                assert _page_totals(page.text) == {
                    c: (v["reached"], v["pending"], v["failed"]) for c, v in logged.items()
                }
                totals = progress(engine, ref).totals()
                assert set(totals) == {"boards", "loudspeaker", "sms", "web"}
                assert totals["loudspeaker"].reached == len(PLAYERS)
                assert totals["boards"].reached == 2 and totals["web"].reached == 1
                # Every number reached but the one that opted out, which fails as such.
                assert (totals["sms"].reached, totals["sms"].failed) == (RECIPIENTS, 1)

                stopped = time.time()
                cancel(
                    engine, settings, ref, now=SystemClock().now(), actor="chu-tich", note="tan bão"
                )
                wait_for(
                    lambda: all(group.player(p).current is None for p in PLAYERS),
                    30,
                    "every player stopped",
                )
                wait_for(
                    lambda: all(s.showing() is None for s in screens), 30, "both screens cleared"
                )
                for s in screens:
                    cleared = next(at for at, item in s.shown if at > stopped and item is None)
                    assert cleared - stopped <= SOON
                wait_for(
                    lambda: _stops_logged(engine, ref) == len(PLAYERS), 30, "the players' stops"
                )
                for at in _stop_times(engine, ref):
                    assert at - stopped <= SOON
                assert not bulletin(engine, now=SystemClock().now())[0]["pinned"]
                wait_for(
                    lambda: len(gateway.creates) == 2 * RECIPIENTS, 60, "every cancellation SMS"
                )
                notices = [m for m in gateway.messages.values() if "HUỶ" in m.body]
                assert len(notices) == RECIPIENTS and ref in notices[0].body
        finally:
            for s in screens:
                s.stop()
            group.stop()
    assert find(engine, ref).state == "cancelled"
    with engine.connect() as conn:
        events = set(
            conn.scalars(
                select(ActivityEntry.event).where(
                    ActivityEntry.plan_id == find(engine, ref).plan_id
                )
            )
        )
    assert {"emergency_declared", "emergency_cancelled", "failed", "displayed"} <= events


def _cli_config(settings: Settings, path: Path) -> Path:
    """The settings `coso` is run with, as a settings file: the same database, media folder
    (players' keys and clips), public address and channels as the running service."""
    from tests.hostile.strategies import toml_document

    doc: dict[str, Any] = {
        "database": {"url": settings.database.url},
        "server": {"public_url": settings.server.public_url},
        "media": {"dir": settings.media.dir},
    }
    doc |= {f"channels.{name}": section for name, section in settings.channels.items()}
    path.write_text(toml_document(doc), encoding="utf-8")
    return path


def test_cancelled_without_a_cancellation_text_it_still_stops_players_screens_and_bulletin(
    engine: Engine, settings: Settings, broker_url: str, tmp_path: Path
) -> None:
    """`coso emergency send --no-cancel-sms`, then `coso emergency cancel`: the players stop
    it, the screen clears, the bulletin unpins it, and nobody is texted that it is off."""
    from typer.testing import CliRunner

    from dispatcher.cli.app import app

    settings = speaker_settings(settings, broker_url, tmp_path)
    ids = ["loa-a", "loa-b"]
    now = SystemClock().now()
    add_endpoints(
        engine,
        [
            *({"channel": "loudspeaker", "address": p, "unit_code": "06040"} for p in ids),
            {"channel": "boards", "address": "screen:cho-06040", "unit_code": "06040"},
            {"channel": "web", "address": "bulletin:06040", "unit_code": "06040"},
        ],
        now,
    )
    token = issue_token(engine, "screen:cho-06040", now)
    rows = [{"name": f"CD {n}", "phone": phone(n), "unit": "06040", "groups": "xa"} for n in (1, 2)]
    import_recipients(engine, write_recipients(tmp_path / "ds.csv", rows))
    storm = clip(tmp_path, 60, 880)  # still playing when it is called off
    runner = CliRunner()
    with TwilioServer() as gateway:
        sms_settings(settings, gateway.url)
        group = players(settings, ids, tmp_path).start()
        screens: list[Screen] = []
        try:
            with running_coso(engine, settings):
                screen = Screen(settings.server.public_url, "cho-06040", token).start()
                screens.append(screen)
                wait_for(lambda: screen.shown, 20, "the screen connected")
                config = str(_cli_config(settings, tmp_path / "coso.toml"))
                sent = runner.invoke(
                    app,
                    ["--config", config, "emergency", "send", "--text", "Lũ quét: lên chỗ cao.",
                     "--units", "06040", "--audio", str(storm), "--no-cancel-sms"],
                )  # fmt: skip
                assert sent.exit_code == 0, sent.output
                ref = find(engine, "1").reference
                wait_for(
                    lambda: all(group.player(p).current is not None for p in ids),
                    30,
                    "the warning playing on both players",
                )
                wait_for(lambda: _shows_emergency(screen), 30, "the warning on the screen")
                wait_for(lambda: len(gateway.creates) == 2, 30, "the warning texted")
                wait_for(lambda: _pinned(engine), 30, "the warning pinned on the bulletin")

                gone = runner.invoke(app, ["--config", config, "emergency", "cancel", ref])
                assert gone.exit_code == 0, gone.output
                wait_for(
                    lambda: all(group.player(p).current is None for p in ids),
                    30,
                    "both players stopped",
                )
                wait_for(lambda: screen.showing() is None, 30, "the screen cleared")
                assert not bulletin(engine, now=SystemClock().now())[0]["pinned"]
                # Nothing exists that could text the cancellation, and nothing did.
                assert _notices(engine, ref) == 0
                assert len(gateway.creates) == 2
                assert not any("HUỶ" in m.body for m in gateway.messages.values())
        finally:
            for s in screens:
                s.stop()
            group.stop()
    (said,) = [
        e
        for e in emergency_log(engine, ref)
        if e.event == "emergency_cancelled" and e.channel == "sms"
    ]
    assert "không gửi tin báo huỷ" in said.detail
    assert find(engine, ref).state == "cancelled"


def _notices(engine: Engine, ref: str) -> int:
    """The emergency's cancellation texts: content written for them, and their deliveries."""
    C, D = ContentItem.__table__, Delivery.__table__
    plan = find(engine, ref).plan_id
    with engine.connect() as conn:
        items = conn.scalars(select(C.c.id).where(C.c.plan_id == plan, C.c.key.like("huy-%"))).all()
        sent = conn.scalars(select(D.c.id).where(D.c.content_id.in_(items))).all()
    return len(items) + len(sent)


def _shows_emergency(screen: Screen) -> bool:
    return (screen.showing() or {}).get("priority") == "emergency"


def _messages_per_second(gateway: TwilioServer) -> int:
    """Messages the channel's rate lets out in a second: RATE counts segments."""
    segments = {m.segments for m in gateway.messages.values()}
    assert len(segments) == 1, f"messages of {segments} segments"
    return RATE // segments.pop()


def _busiest_second(times: list[float]) -> int:
    """The most messages the gateway received in any one second (a sliding window starting
    at each message)."""
    return max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))


def _displays(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(BoardDisplay.__table__.c.id)).all())


def _settled(engine: Engine, ref: str) -> bool:
    """Nothing of the emergency waits for its first answer: the players have it, the
    gateway reported on every SMS, the screens showed it."""
    plan = find(engine, ref).plan_id
    D = Delivery.__table__
    with engine.connect() as conn:
        states = set(conn.scalars(select(D.c.state).where(D.c.plan_id == plan).distinct()))
    return not states & {"pending", "sending", "sent", "retry_wait"}


def _stop_rows(engine: Engine, ref: str) -> list[object]:
    plan = find(engine, ref).plan_id
    A = ActivityEntry.__table__
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(A.c.at).where(
                    A.c.plan_id == plan,
                    A.c.channel == "loudspeaker",
                    A.c.state == "failed",
                    A.c.detail.like("%stopped by the operator%"),
                )
            ).all()
        )


def _stops_logged(engine: Engine, ref: str) -> int:
    return len(_stop_rows(engine, ref))


def _stop_times(engine: Engine, ref: str) -> list[float]:
    return [as_utc(r.at).timestamp() for r in _stop_rows(engine, ref)]  # type: ignore[attr-defined]


def _pinned(engine: Engine) -> bool:
    """The bulletin's first post is a pinned emergency (the web channel publishes in its
    own time)."""
    posts = bulletin(engine, now=SystemClock().now())
    return bool(posts) and bool(posts[0]["pinned"])
