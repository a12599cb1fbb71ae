"""Hostile requests to every route of the web app (the console, the bulletin, players'
media, the SMS gateway's webhooks, the API docs): a 4xx or a page, never a 5xx, nothing
written, nothing logged as a failure; and the same server still takes the gateway's
callbacks for a blast sent afterwards."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from hypothesis import example, given
from sqlalchemy import Engine

from coso.clock import SystemClock
from coso.config import Settings
from dispatcher.service import Dispatcher
from dispatcher.web.app import create_app
from schedules.adhoc import add_blast
from tests.conftest import ServerThread
from tests.helpers import wait_for
from tests.hostile.conftest import assert_unchanged, snapshot
from tests.hostile.strategies import Request, http_requests
from tests.sms import add_recipients, e164, import_sms_plan, sms_settings, states
from tests.twilio_server import TwilioServer, sign


def _send(session: requests.Session, base: str, public: str, r: Request) -> requests.Response:
    if r.signed:  # a form signed for the public URL the gateway was given
        form = json.loads(r.body)
        headers = {
            "X-Twilio-Signature": sign(public + r.path, form),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        body = urlencode(form).encode()
        return session.post(base + r.path, data=body, headers=headers, timeout=60)
    return session.request(r.method, base + r.path, headers=r.headers, data=r.body, timeout=60)


def test_hostile_requests_get_a_4xx_and_change_nothing(
    engine: Engine, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with TwilioServer() as gateway:
        sms_settings(settings, gateway.url)
        settings.media.dir = str(tmp_path / "media")
        plan = import_sms_plan(engine, settings, tmp_path)
        add_recipients(engine, tmp_path, 1)
        with ServerThread(create_app(engine, settings)) as web:
            settings.server.public_url = web.url
            before = snapshot(engine)
            session = requests.Session()

            @given(http_requests())
            @example(Request("POST", "/sms/status", {}, b"MessageSid=\xff\xfe&MessageStatus=sent"))
            @example(Request("POST", "/sms/inbound", {}, b"\xc3\x28"))
            def refused(r: Request) -> None:
                caplog.clear()
                with caplog.at_level(logging.WARNING):
                    response = _send(session, web.url, web.url, r)
                assert response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
                if r.signed or r.path.startswith("/sms/"):
                    assert response.status_code >= 400 or response.status_code == 200
                failures = [x for x in caplog.records if x.levelno >= logging.ERROR or x.exc_info]
                assert not failures, failures[0].getMessage()[:300]
                assert_unchanged(engine, before)

            refused()
            # The same server takes the gateway's callbacks for a blast sent now.
            blast = add_blast(engine, plan, "bao", "sms", {"endpoints": [e164(0)]},
                              SystemClock().now(), validity=timedelta(hours=1))  # fmt: skip
            dispatcher = Dispatcher(engine, settings, SystemClock())
            dispatcher.start()
            try:
                dispatcher.fire()
                wait_for(lambda: states(engine, blast.id) == {"delivered": 1}, 60,
                         "the blast delivered, as the gateway's callback says")  # fmt: skip
            finally:
                dispatcher.stop()
        assert gateway.creates == [e164(0)]


@pytest.mark.parametrize(
    "sender",
    [
        "",
        "0912-abc-678",  # letters read as keypad digits: someone else's number
        "abc",  # once kept as an opt-out of "abc"
        "\x00",
        "x" * 10_000,
    ],
)
def test_a_signed_stop_from_no_phone_number_opts_nobody_out(
    sender: str, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """An inbound STOP whose sender is not a phone number is refused (4xx) or ignored: it
    is no opt-out."""
    with TwilioServer() as gateway:
        sms_settings(settings, gateway.url)
        with ServerThread(create_app(engine, settings)) as web:
            settings.server.public_url = web.url
            before = snapshot(engine)
            form = {"From": sender, "Body": "STOP"}
            url = f"{web.url}/sms/inbound"
            answer = requests.post(url, data=form, headers={"X-Twilio-Signature": sign(url, form)})
            assert answer.status_code < 500
            assert_unchanged(engine, before)
