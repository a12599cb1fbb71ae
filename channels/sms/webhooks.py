"""The SMS gateway's webhooks, mounted at /sms: status callbacks and inbound messages, each
checked against X-Twilio-Signature for the public URL the gateway was given. A plain
Starlette app: callbacks come by the thousand per second and need no more than this."""

from __future__ import annotations

import functools
import hmac
import logging
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlparse

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator, add_port, remove_port
from twilio.twiml.messaging_response import MessagingResponse

from channels.host import ChannelHost
from channels.sms.channel import INBOUND_PATH, STATUS_PATH
from channels.sms.status import (
    CallbackBatcher,
    CallbackError,
    StatusCallback,
    offer_inbound,
    record_inbound,
)

log = logging.getLogger(__name__)
MOUNT = "/sms"


class BadSignature(Exception):
    pass


class BadForm(Exception):
    pass


# X-Twilio-Signature is the base64 of an HMAC-SHA1: 28 characters ending in "=".
SIGNATURE_SHAPE = re.compile(r"[A-Za-z0-9+/]{27}=")
# NUL and other control characters (a message body's line breaks and tabs aside).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@functools.lru_cache(maxsize=64)
def signed_urls(url: str) -> tuple[str, str]:
    """The two forms of `url` a gateway may have signed, without and with its port: Twilio
    signs either, and its RequestValidator accepts both."""
    parsed = urlparse(url)
    return remove_port(parsed), add_port(parsed)


def signed_by_gateway(
    validator: RequestValidator, url: str, form: Mapping[str, str], signature: str
) -> bool:
    """What `RequestValidator.validate` answers for a form, with the URL's two forms worked
    out once and the second signed only when the first does not match."""
    return any(
        hmac.compare_digest(validator.compute_signature(u, form), signature)
        for u in signed_urls(url)
    )


def sms_webhooks(host: ChannelHost) -> Starlette:
    from channels.registry import settings_of

    engine, settings, clock = host.engine, host.settings, host.clock
    cfg = settings_of(settings, "sms")
    validator = RequestValidator(cfg.auth_token)
    callbacks = CallbackBatcher(host)

    async def signed_form(request: Request, path: str) -> dict[str, str]:
        """The form, if its signature is the gateway's for <server.public_url><path>."""
        signature = request.headers.get("X-Twilio-Signature", "")
        if not cfg.auth_token or not SIGNATURE_SHAPE.fullmatch(signature):
            log.warning("refused a request to %s without a well-formed signature", path)
            raise BadSignature  # before the body is read
        try:
            text = (await request.body()).decode("utf-8")
            form = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=False))
        except UnicodeDecodeError as exc:
            raise BadForm(
                f"Nội dung biểu mẫu không hợp lệ: không phải UTF-8 ({exc.reason})"
            ) from None
        bad = next((k for k, v in form.items() if CONTROL.search(k) or CONTROL.search(v)), None)
        if bad is not None:  # no gateway sends these; a sid or number with them is forged
            raise BadForm(f"Nội dung biểu mẫu không hợp lệ: {bad!r} chứa ký tự điều khiển")
        query = request.scope["query_string"].decode("utf-8", "replace")  # as Starlette's URL
        url = settings.server.public_url.rstrip("/") + path + (f"?{query}" if query else "")
        if not cfg.auth_token or not signed_by_gateway(validator, url, form, signature):
            log.warning("refused a request to %s with a bad signature", path)
            raise BadSignature
        return form

    async def status(request: Request) -> Response:
        """A delivery report; answered once applied and committed."""
        try:
            form = await signed_form(request, STATUS_PATH)
            callback = StatusCallback.from_form(form, clock.now())
        except BadSignature:
            return PlainTextResponse("bad or missing X-Twilio-Signature", 403)
        except BadForm as exc:
            return PlainTextResponse(str(exc), 400)
        except CallbackError as exc:
            return PlainTextResponse(str(exc), 400)
        await callbacks.apply(callback)
        return Response(status_code=204)

    async def inbound(request: Request) -> Response:
        """An SMS to coso's number: first offered to the channels that read texts (an
        operator's confirmation), answered with their reply; else STOP / TU CHOI opts its
        sender out."""
        try:
            form = await signed_form(request, INBOUND_PATH)
        except BadSignature:
            return PlainTextResponse("bad or missing X-Twilio-Signature", 403)
        except BadForm as exc:
            return PlainTextResponse(str(exc), 400)
        at = clock.now()
        answer = await anyio.to_thread.run_sync(offer_inbound, host, form, at)
        reply = MessagingResponse()
        if answer is None:
            await anyio.to_thread.run_sync(record_inbound, engine, form, at)
        else:
            reply.message(answer)
        return Response(str(reply), media_type="application/xml")

    return Starlette(
        routes=[
            Route(STATUS_PATH.removeprefix(MOUNT), status, methods=["POST"]),
            Route(INBOUND_PATH.removeprefix(MOUNT), inbound, methods=["POST"]),
        ]
    )
