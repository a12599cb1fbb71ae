"""SMS blasts through the real twilio client against a local Twilio-compatible gateway:
exactly one message per valid recipient, errors classified, callbacks signed and applied
forward only, quiet hours, the daily cap, opt-outs."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from sqlalchemy import Engine, select

from channels.registry import settings_of
from channels.sms.channel import SmsChannel
from channels.sms.recipients import add_opt_out, list_opt_outs
from coso.clock import ManualClock, SystemClock
from coso.config import Settings
from dispatcher.models import Delivery
from dispatcher.service import Dispatcher
from dispatcher.web.app import create_app
from schedules.adhoc import add_blast
from tests.conftest import ServerThread
from tests.helpers import wait_for
from tests.sms import (
    add_recipients,
    e164,
    import_recipients,
    import_sms_plan,
    log_events,
    phone,
    sms_dispatcher,
    sms_settings,
    states,
    write_recipients,
)
from tests.twilio_server import TwilioServer, post_callback, sign

FINAL = {"delivered", "failed"}


def test_blast_of_1000_with_bad_numbers_permanent_errors_429s_and_opt_outs(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    rows = []
    for n in range(1000):
        number = phone(n) if n % 50 != 7 else f"09{n:03d}"  # 2% not numbers at all
        rows.append({"name": f"Công dân {n}", "phone": number, "unit": "", "groups": "xa-vien"})
    found = import_recipients(engine, write_recipients(tmp_path / "ds.csv", rows))
    assert len(found.invalid) == 20 and len(found.recipients) == 980
    valid = [n for n in range(1000) if n % 50 != 7]
    codes = ([21211, 21612, 21614, 21610] * 3)[:10]
    permanent = {e164(n): code for n, code in zip(valid[3::98], codes, strict=True)}  # 1%
    stopped = [e164(n) for n in valid[17::196]]
    throttled = {e164(n) for n in valid[5::20]} - set(stopped) - set(permanent)  # 5%: 429s
    undelivered = {e164(n): 30003 for n in valid[11::245]}
    with TwilioServer() as gateway:
        gateway.behaviour.permanent = permanent
        gateway.behaviour.throttle_once = throttled
        gateway.behaviour.undelivered = undelivered
        sms_settings(settings, gateway.url)
        clock = SystemClock()
        with ServerThread(create_app(engine, settings, clock)) as web:
            settings.server.public_url = web.url
            # opt-outs: two replied STOP / TU CHOI through the signed inbound webhook
            for number, word in zip(stopped[:2], ["STOP", "Từ chối"], strict=True):
                reply = post_callback(f"{web.url}/sms/inbound", {"From": number, "Body": word})
                assert reply.status_code == 200 and "<Response" in reply.text
            for number in stopped[2:]:
                add_opt_out(engine, number, clock.now(), "manual")
            plan = import_sms_plan(engine, settings, tmp_path)
            blast = add_blast(
                engine, plan, "nhac-lich", "sms", {"groups": ["xa-vien"]}, clock.now(),
                validity=timedelta(hours=6),
            )  # fmt: skip
            dispatcher = Dispatcher(engine, settings, clock)
            dispatcher.start()
            try:
                dispatcher.fire()
                wait_for(
                    lambda: (
                        sum(v for k, v in states(engine, blast.id).items() if k in FINAL) == 980
                    ),
                    120,
                    "980 final deliveries",
                )
                assert gateway.wait_callbacks_idle(30)
            finally:
                dispatcher.stop()
        assert gateway.callback_failures == []
        got = Counter(gateway.creates)
        messages = dict(gateway.messages)
    reached = {r.phone for r in found.recipients} - set(permanent) - set(stopped)
    assert set(got) == reached and set(got.values()) == {1}  # each exactly once
    assert sum(1 for to, status in gateway.rejected if status == 429) == len(throttled)
    refused = Counter(to for to, status in gateway.rejected if status == 400)
    assert refused == dict.fromkeys(permanent, 1)  # permanent errors are not retried
    unsubscribed = {number for number, code in permanent.items() if code == 21610}
    assert unsubscribed <= {o.phone for o in list_opt_outs(engine) if o.source == "gateway"}
    assert all(m.body.startswith("Kính gửi Công dân") for m in messages.values())
    assert all(m.validity and 21000 < m.validity <= 21600 for m in messages.values())

    D = Delivery.__table__
    with engine.connect() as conn:
        rows_by_phone = {
            r.address: r
            for r in conn.execute(
                select(D.c.state, D.c.last_error, D.c.provider_id, D.c.attempts)
                .add_columns(select_address())
                .where(D.c.schedule_id == blast.id)
            )
        }
    for number, code in permanent.items():
        assert rows_by_phone[number].state == "failed"
        assert rows_by_phone[number].last_error.startswith(f"{code}:")
        # The gateway's own words stay, next to coso's reading of its code.
        assert f"Error {code} for {number}" in rows_by_phone[number].last_error
        assert "(coso: " in rows_by_phone[number].last_error
    for number, code in undelivered.items():
        assert rows_by_phone[number].state == "failed"
        assert rows_by_phone[number].last_error.startswith(f"{code}:")
    for number in stopped:
        assert (
            rows_by_phone[number].state == "failed"
            and "opted out" in rows_by_phone[number].last_error
        )
    for number in throttled:
        assert rows_by_phone[number].state == "delivered" and rows_by_phone[number].attempts == 2
    assert states(engine, blast.id) == {
        "delivered": len(reached) - len(undelivered),
        "failed": len(permanent) + len(undelivered) + len(stopped),
    }
    # A callback is in the log when it moves a message, or when it is truly out of order
    # (a `sent` posted after the message's final report); the gateway's `sent` that finds
    # the message `sent` already (coso counted it sent when the gateway accepted it) says
    # nothing new and writes nothing.
    entries = log_events(engine, actor="gateway")
    by_gateway = Counter(e.event for e in entries)
    assert by_gateway["delivered"] == len(reached) - len(undelivered)
    assert by_gateway["undelivered"] == len(undelivered)
    assert set(by_gateway) <= {"delivered", "undelivered", "status"}
    notes = [e.detail for e in entries if e.event == "status"]
    assert len(notes) <= len(messages)
    assert all(
        n.startswith("sent arrived after the delivery was ")
        and not n.startswith("sent arrived after the delivery was sent")
        for n in notes
    ), notes[:3]
    assert len(log_events(engine, event="opted_out")) == len(stopped)


def select_address():  # type: ignore[no-untyped-def]
    from channels.endpoints import Endpoint

    E = Endpoint.__table__
    return (
        select(E.c.address)
        .where(E.c.id == Delivery.__table__.c.endpoint_id)
        .scalar_subquery()
        .label("address")
    )


def test_forged_callback_gets_403_and_late_sent_leaves_delivered(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    import_recipients(
        engine,
        write_recipients(
            tmp_path / "ds.csv", [{"name": "An", "phone": phone(1), "unit": "", "groups": "g"}]
        ),
    )
    with TwilioServer() as gateway:
        gateway.behaviour.callbacks = False  # this test posts them itself
        sms_settings(settings, gateway.url)
        clock = SystemClock()
        with ServerThread(create_app(engine, settings, clock)) as web:
            settings.server.public_url = web.url
            plan = import_sms_plan(engine, settings, tmp_path)
            blast = add_blast(engine, plan, "nhac-lich", "sms", {"groups": ["g"]}, clock.now())
            Dispatcher(engine, settings, clock).tick()
            assert states(engine, blast.id) == {"sent": 1}
            sid = next(iter(gateway.messages))
            url = f"{web.url}/sms/status"
            form = {"MessageSid": sid, "MessageStatus": "delivered", "To": e164(1)}
            forged = requests.post(url, data=form, headers={"X-Twilio-Signature": "bm90IGl0"})
            unsigned = requests.post(url, data=form)
            elsewhere = requests.post(  # signed for another URL
                url, data=form, headers={"X-Twilio-Signature": sign("http://x/sms/status", form)}
            )
            altered = requests.post(  # signed, then changed on the way
                url,
                data={**form, "MessageStatus": "failed"},
                headers={"X-Twilio-Signature": sign(url, form)},
            )
            assert [r.status_code for r in (forged, unsigned, elsewhere, altered)] == [403] * 4
            assert states(engine, blast.id) == {"sent": 1}
            assert log_events(engine, actor="gateway") == []
            # delivered overtakes sent: the late sent changes nothing
            assert post_callback(url, form).status_code == 204
            late = post_callback(url, {"MessageSid": sid, "MessageStatus": "sent", "To": e164(1)})
            assert late.status_code == 204
    assert states(engine, blast.id) == {"delivered": 1}
    notes = log_events(engine, event="status")
    assert len(notes) == 1 and "stays delivered" in notes[0].detail


def _local(clock_text: str) -> datetime:
    """A time in Asia/Ho_Chi_Minh (UTC+7) on 2 May 2021, as UTC."""
    hours, minutes = map(int, clock_text.split(":"))
    return datetime(2021, 5, 2, hours, minutes, tzinfo=UTC) - timedelta(hours=7)


def test_quiet_hours_pause_at_22_and_resume_at_7_but_not_for_an_emergency(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    add_recipients(engine, tmp_path, 30)
    clock = ManualClock(_local("21:50"))
    with TwilioServer() as gateway:
        settings.dispatcher.claim_batch = 10
        dispatcher = sms_dispatcher(
            engine, settings, gateway.url, clock, quiet_start="22:00", quiet_end="07:00"
        )
        plan = import_sms_plan(engine, settings, tmp_path)
        blast = add_blast(
            engine, plan, "nhac-lich", "sms", {"groups": ["g"]}, clock.now(),
            validity=timedelta(hours=12),
        )  # fmt: skip
        dispatcher.fire()
        dispatcher.senders["sms"].send_due()  # the first 10 go out at 21:50
        assert len(gateway.creates) == 10
        clock.set(_local("22:00"))
        dispatcher.tick()
        assert len(gateway.creates) == 10, "a message went out in quiet hours"
        paused = log_events(engine, event="paused")
        assert len(paused) == 1 and "20 message(s) wait until" in paused[0].detail
        assert "07:00" in paused[0].detail
        clock.set(_local("23:30"))
        storm = add_blast(
            engine, plan, "bao", "sms", {"groups": ["g"]}, clock.now(), priority="emergency"
        )
        dispatcher.tick()
        assert states(engine, storm.id) == {"sent": 30}  # emergency ignores quiet hours
        assert len(gateway.creates) == 40
        clock.set(_local("06:59") + timedelta(days=1))
        dispatcher.tick()
        assert len(gateway.creates) == 40
        clock.set(_local("07:00") + timedelta(days=1))
        dispatcher.tick()
        assert states(engine, blast.id) == {"sent": 30}
        assert Counter(gateway.creates) == {e164(n): 2 for n in range(30)}
        assert len(log_events(engine, event="paused")) == 1


def test_quiet_hours_outlast_a_blast_that_expires_first(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    add_recipients(engine, tmp_path, 5)
    clock = ManualClock(_local("22:30"))
    with TwilioServer() as gateway:
        dispatcher = sms_dispatcher(
            engine, settings, gateway.url, clock, quiet_start="22:00", quiet_end="07:00"
        )
        plan = import_sms_plan(engine, settings, tmp_path)
        blast = add_blast(
            engine, plan, "nhac-lich", "sms", {"groups": ["g"]}, clock.now(),
            validity=timedelta(hours=2),
        )  # fmt: skip
        dispatcher.tick()
        clock.set(_local("07:00") + timedelta(days=1))
        dispatcher.tick()
        assert gateway.creates == []
    assert states(engine, blast.id) == {"expired": 5}


def test_daily_cap_holds_the_fourth_message_but_not_an_emergency(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    add_recipients(engine, tmp_path, 1)
    clock = ManualClock(_local("09:00"))
    with TwilioServer() as gateway:
        dispatcher = sms_dispatcher(engine, settings, gateway.url, clock, daily_cap=3)
        plan = import_sms_plan(engine, settings, tmp_path)
        blasts = []
        for _ in range(4):
            blasts.append(
                add_blast(engine, plan, "nhac-lich", "sms", {"groups": ["g"]}, clock.now())
            )
            dispatcher.tick()
            clock.advance(timedelta(hours=1))
        assert len(gateway.creates) == 3
        assert states(engine, blasts[3].id) == {"retry_wait": 1}
        held = log_events(engine, event="held")
        assert len(held) == 1 and "the cap" in held[0].detail
        add_blast(engine, plan, "bao", "sms", {"groups": ["g"]}, clock.now(), priority="emergency")
        dispatcher.tick()
        assert len(gateway.creates) == 4  # the emergency went at once
        clock.set(_local("09:00") + timedelta(hours=24, minutes=1))
        dispatcher.tick()
        assert len(gateway.creates) == 5 and states(engine, blasts[3].id) == {"sent": 1}
        with engine.connect() as conn:
            attempts = conn.scalar(
                select(Delivery.attempts).where(Delivery.schedule_id == blasts[3].id)
            )
        assert attempts == 1  # being held is not an attempt


def test_cli_preview_then_send_and_a_template_that_fails_for_a_recipient_sends_nothing(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from dispatcher.cli.app import app
    from tests.twilio_server import ACCOUNT_SID, AUTH_TOKEN

    rows = [
        {"name": f"Bà con {n}", "phone": phone(n), "unit": "", "groups": "g"} for n in range(12)
    ]
    import_recipients(engine, write_recipients(tmp_path / "ds.csv", rows))
    add_opt_out(engine, e164(0), SystemClock().now(), "manual")
    import_sms_plan(engine, settings, tmp_path)
    with TwilioServer() as gateway:
        gateway.behaviour.callbacks = False
        env = {
            "COSO_DATABASE__URL": settings.database.url,
            "COSO_CHANNELS__SMS__ACCOUNT_SID": ACCOUNT_SID,
            "COSO_CHANNELS__SMS__AUTH_TOKEN": AUTH_TOKEN,
            "COSO_CHANNELS__SMS__BASE_URL": gateway.url,
            "COSO_CHANNELS__SMS__SENDER": "UBND VQuan",
            "COSO_CHANNELS__SMS__QUIET_START": "00:00",
            "COSO_CHANNELS__SMS__QUIET_END": "00:00",
            "COSO_CHANNELS__SMS__STATUS_CALLBACKS": "false",
        }
        runner = CliRunner()
        args = ["--plan", "12/KH-UBND", "--to", "group:g"]
        preview = runner.invoke(app, ["sms", "preview", *args, "--content", "nhac-lich"], env=env)
        assert preview.exit_code == 0, preview.output
        assert "UCS-2" in preview.output
        # 70 characters for "Bà con 1".."Bà con 9", 71 (two segments) for 10 and 11
        assert "11 message(s) (11 UCS-2), 13 segment(s) in all" in preview.output
        assert "1 opted-out number(s) left out" in preview.output
        plain = runner.invoke(
            app, ["sms", "preview", *args, "--content", "nhac-lich", "--khong-dau"], env=env
        )
        assert "11 message(s) (11 GSM-7), 11 segment(s) in all" in plain.output
        assert "Kinh gui Ba con 1" in plain.output

        broken = runner.invoke(
            app, ["sms", "send", *args, "--content", "biet-danh", "--yes"], env=env
        )
        assert broken.exit_code == 2
        assert "biet_danh" in broken.output and "+84980000001" in broken.output
        assert gateway.creates == []

        sent = runner.invoke(
            app, ["sms", "send", *args, "--content", "nhac-lich", "--khong-dau", "--yes"], env=env
        )
        assert sent.exit_code == 0, sent.output
        assert "11 sent" in sent.output and "blast recorded in plan 12/KH-UBND" in sent.output
        assert sorted(gateway.creates) == sorted(e164(n) for n in range(1, 12))
        assert all(m.body.startswith("Kinh gui Ba con") for m in gateway.messages.values())


def test_cli_opt_out_list_by_hand(engine: Engine, settings: Settings) -> None:
    from typer.testing import CliRunner

    from dispatcher.cli.app import app

    env = {"COSO_DATABASE__URL": settings.database.url}
    runner = CliRunner()
    added = runner.invoke(
        app, ["sms", "optouts", "add", "0162 345 6789", "--note", "gọi điện"], env=env
    )
    assert added.exit_code == 0 and "+84323456789: opted out" in added.output
    listed = runner.invoke(app, ["sms", "optouts", "list"], env=env)
    assert "+84323456789" in listed.output and "manual" in listed.output
    bad = runner.invoke(app, ["sms", "optouts", "add", "12345"], env=env)
    assert bad.exit_code == 2 and "phone = '12345'" in bad.output
    removed = runner.invoke(app, ["sms", "optouts", "remove", "+84323456789"], env=env)
    assert removed.exit_code == 0 and list_opt_outs(engine) == []
    again = runner.invoke(app, ["sms", "optouts", "remove", "+84323456789"], env=env)
    assert again.exit_code == 2 and "not on the opt-out list" in again.output


def test_unreachable_gateway_is_retried_but_a_lost_answer_is_unknown(settings: Settings) -> None:
    import pytest

    from channels.base import Outbound, TransientSendError, UncertainSendError
    from tests.conftest import free_port

    message = Outbound(1, 1, e164(1), None, 1, "normal", None, "t", "Chào bà con", {})
    closed = settings_of(sms_settings(settings, f"http://127.0.0.1:{free_port()}"), "sms")
    with pytest.raises(TransientSendError, match="unreachable"):
        SmsChannel(closed, "http://coso.test", SystemClock().now).send(message)
    with TwilioServer() as gateway:
        gateway.behaviour.create_delay = 1.0
        slow = settings_of(sms_settings(settings, gateway.url, timeout=0.3), "sms")
        with pytest.raises(UncertainSendError, match="no answer"):
            SmsChannel(slow, "http://coso.test", SystemClock().now).send(message)
        time.sleep(1.0)
        assert gateway.creates == [e164(1)]  # it did reach the gateway: never send it again
