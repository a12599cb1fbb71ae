"""The SMS channel as coso finds it (entry point `coso.channels: sms`). Twilio's client is
imported only by the hooks that send or receive."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from channels.registry import ChannelPlugin
from channels.sms.settings import SmsSettings
from channels.states import RETRY_WAIT, UNKNOWN


class SmsOptions(BaseModel):
    """A schedule's SMS options in the plan file: `options = { khong_dau = true }`."""

    model_config = ConfigDict(extra="forbid")

    # Send without diacritics (GSM-7, 160 characters a segment); unset: channels.sms.khong_dau.
    khong_dau: bool | None = None


def build(host: Any, cfg: SmsSettings) -> Any:
    from channels.sms.channel import SmsChannel

    return SmsChannel(cfg, host.settings.server.public_url, host.clock.now)


def rules(host: Any, cfg: SmsSettings) -> Any:
    from channels.sms.rules import SmsRules

    return SmsRules(host, cfg)


def routes(host: Any, _templates: Any) -> list[Any]:
    from starlette.routing import Mount

    from channels.sms.webhooks import MOUNT, sms_webhooks

    return [Mount(MOUNT, sms_webhooks(host))]


def cli(app: Any) -> None:
    from channels.sms.cli import sms_app

    app.add_typer(sms_app, name="sms")


def tables() -> None:
    import channels.sms.recipients  # noqa: F401


def address(text: str) -> str:
    from channels.sms.phones import PhoneError, to_e164

    try:
        return to_e164(text)
    except PhoneError as exc:
        raise ValueError(str(exc)) from exc


plugin = ChannelPlugin(
    name="sms",
    title="Tin nhắn SMS (Twilio hoặc cổng tương thích)",
    build=build,
    settings=SmsSettings,
    configured=lambda cfg: bool(cfg.account_sid),
    not_configured_hint="set channels.sms.account_sid and auth_token",
    # An `unknown` message that `coso sms reconcile` did not find at the gateway never left
    # coso, and may be sent.
    extra_moves={RETRY_WAIT: (UNKNOWN,)},
    options=SmsOptions,
    address=address,
    rules=rules,
    routes=routes,
    cli=cli,
    tables=tables,
)
