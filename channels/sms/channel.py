"""SMS through Twilio's Messages API (or a gateway that speaks it), with the `twilio` client.

Endpoint address = the recipient's E.164 number. One message per delivery: `sent` when the
gateway accepted it (its sid kept as provider id); delivery reports come back later as
signed status callbacks (dispatcher/sms_status.py). 429 and 5xx are retried with backoff
(Retry-After honoured); the permanent errors fail that recipient with their code. A
request whose answer was lost (read timeout, dropped connection after sending) may have
reached the gateway: it becomes `unknown`, never sent again blindly (`coso sms reconcile`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from twilio.base.exceptions import TwilioRestException
from twilio.base.version import Version
from twilio.http.response import Response
from twilio.rest import Client

from channels.base import (
    Accepted,
    Channel,
    Outbound,
    PermanentSendError,
    TransientSendError,
    UncertainSendError,
)
from channels.sms.http import GatewayHttp, GatewayNoAnswer, GatewayUnreachable
from channels.sms.settings import SmsSettings
from content.sms_text import measure, prepare

TWILIO_API = "https://api.twilio.com"
STATUS_PATH = "/sms/status"
INBOUND_PATH = "/sms/inbound"
MAX_VALIDITY = 36000  # seconds: the longest ValidityPeriod Twilio takes
MIN_VALIDITY = 1
# Errors that will never succeed for this number; 21610 also records an opt-out.
PERMANENT_CODES = {
    21211: "invalid 'To' phone number",
    21408: "permission to send to this region not enabled",
    21610: "the recipient replied STOP (unsubscribed)",
    21612: "the 'To' number is not reachable by SMS",
    21614: "the 'To' number is not a mobile number",
    30003: "unreachable destination handset",
    30005: "unknown destination handset",
    30006: "landline or unreachable carrier",
    30007: "carrier violation (filtered)",
}
UNSUBSCRIBED = 21610


@dataclass(frozen=True)
class SmsText:
    text: str
    encoding: str
    segments: int


def sms_text(message: Outbound, plain_by_default: bool = False) -> SmsText:
    """What goes out for a delivery: NFC, without diacritics when the schedule says (or,
    when it says nothing, when the channel's default says)."""
    plain = message.extra.get("options", {}).get("khong_dau")
    return _prepared(message.body, plain_by_default if plain is None else bool(plain))


@lru_cache(maxsize=4096)
def _prepared(body: str, plain: bool) -> SmsText:
    """Prepared once for the rate limit's cost and again for the send: the same text."""
    text = prepare(body, plain=plain)
    length = measure(text)
    return SmsText(text, length.encoding, length.segments)


class SmsChannel(Channel):
    name = "sms"
    resend_safe = False  # a second request is a second message on someone's phone
    reports_by_provider_id = True  # status callbacks name the message's sid

    def __init__(self, settings: SmsSettings, public_url: str, now: Callable[[], datetime]) -> None:
        if not settings.account_sid or not settings.auth_token:
            raise ValueError("channels.sms needs account_sid and auth_token")
        if not settings.sender and not settings.messaging_service_sid:
            raise ValueError("channels.sms needs a sender or a messaging_service_sid")
        self.settings = settings
        self.base_url = (settings.base_url or TWILIO_API).rstrip("/")
        self.callback_url = (
            public_url.rstrip("/") + STATUS_PATH if settings.status_callbacks else None
        )
        self._now = now
        # One connection pool for every sending thread; a twilio client per thread.
        self.http = GatewayHttp(self.base_url, settings.timeout, settings.concurrency)
        self._local = threading.local()

    def client(self) -> Client:
        """This sending thread's client, over the channel's connection pool."""
        if not hasattr(self._local, "client"):
            self._local.client = Client(
                self.settings.account_sid, self.settings.auth_token, http_client=self.http
            )
        return self._local.client

    def cost(self, message: Outbound) -> int:
        """What a message takes from the rate limit: its segments."""
        return max(1, sms_text(message, self.settings.khong_dau).segments)

    def send(self, message: Outbound) -> Accepted:
        text = sms_text(message, self.settings.khong_dau)
        form: dict[str, Any] = {"To": message.address, "Body": text.text, **self._sender()}
        if self.callback_url:
            form["StatusCallback"] = self.callback_url
        validity = validity_seconds(message.expires_at, self._now())
        if validity is not None:
            form["ValidityPeriod"] = validity
        try:
            sid = self._create(form)
        except TwilioRestException as exc:
            raise classify(exc, self.http.last) from exc
        except GatewayUnreachable as exc:
            raise TransientSendError(f"gateway unreachable: {exc}") from exc
        except GatewayNoAnswer as exc:
            raise UncertainSendError(f"no answer from the gateway: {exc}") from exc
        detail = f"{text.segments} segment(s), {text.encoding}"
        return Accepted(state="sent", event="sent", provider_id=sid, detail=detail)

    def send_text(self, to: str, text: str) -> str:
        """Text one person outside any plan (an operator's list of the day): no delivery, no
        status callback, none of a blast's rules. Returns the message's sid; raises
        TransientSendError or PermanentSendError as `send` does."""
        try:
            return self._create({"To": to, "Body": text, **self._sender()})
        except TwilioRestException as exc:
            raise classify(exc, self.http.last) from exc
        except (GatewayUnreachable, GatewayNoAnswer) as exc:
            raise TransientSendError(f"gateway unreachable or silent: {exc}") from exc

    def _sender(self) -> dict[str, str]:
        if self.settings.messaging_service_sid:
            return {"MessagingServiceSid": self.settings.messaging_service_sid}
        return {"From": self.settings.sender}

    def _create(self, form: dict[str, Any]) -> str:
        """POST Messages.json through the twilio client's own request (its authentication,
        headers and HTTP client) and its own reading of an error answer; the sid. Not
        through `client.messages`: that loads twilio's whole account API (92 modules, 6 MB
        kept for the life of the process) for this one request."""
        url = f"{self.base_url}/2010-04-01/Accounts/{self.settings.account_sid}/Messages.json"
        response = self.client().request("POST", url, data=form)
        if not 200 <= response.status_code < 300:
            raise Version.exception("POST", url, response, "Unable to create record")
        return str(json.loads(response.text)["sid"])

    def list_messages(self, to: str, since: datetime) -> list[Any]:
        """The gateway's messages to `to` sent since `since` (GET Messages.json)."""
        client = self.client()
        client.api.base_url = self.base_url  # loads twilio's account API: for this alone
        return list(client.messages.list(to=to, date_sent_after=since))


def gateway_error(code: object, message: str | None = None) -> str | None:
    """A gateway error as the log keeps it: the gateway's code and its own words, then
    coso's reading of the code when it knows it ("30003: Unreachable handset (coso:
    unreachable destination handset, permanent)")."""
    if code is None or code == "":
        return None
    known = PERMANENT_CODES.get(int(code)) if str(code).isdigit() else None
    reading = f"coso: {known}, permanent" if known else None
    if message and reading:
        return f"{code}: {message} ({reading})"
    if message or known:
        return f"{code}: {message or known}" + (" (permanent)" if known and not message else "")
    return f"error {code}"


def validity_seconds(expires_at: datetime | None, now: datetime) -> int | None:
    """ValidityPeriod from the delivery's expiry: the gateway drops it after that."""
    if expires_at is None:
        return None
    seconds = int((expires_at - now).total_seconds())
    return max(MIN_VALIDITY, min(MAX_VALIDITY, seconds))


def classify(exc: TwilioRestException, response: Response | None) -> Exception:
    """A gateway error as coso treats it: transient (retry, with Retry-After) or permanent."""
    code = exc.code
    reason = f"{exc.status} {exc.msg}".strip()
    if exc.status == 429 or code == 20429 or exc.status >= 500:
        retry_after = None
        headers = response.headers if response is not None else None
        if headers is not None and headers.get("Retry-After"):
            try:
                retry_after = float(headers["Retry-After"])
            except ValueError:
                retry_after = None
        return TransientSendError(f"gateway: {reason}", retry_after=retry_after)
    if code is not None and code in PERMANENT_CODES:
        # The gateway's words first, then coso's reading of the code.
        said = exc.msg or reason
        return PermanentSendError(
            f"{said} (coso: {PERMANENT_CODES[code]}, permanent)", code=str(code)
        )
    return PermanentSendError(f"gateway refused it: {reason}", code=str(code) if code else None)
