"""The SMS channel as coso finds it (entry point `coso.channels: sms`). Twilio's client is
imported only by the hooks that send or receive."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from channels.registry import ChannelPlugin
from channels.states import RETRY_WAIT, UNKNOWN

if TYPE_CHECKING:
    from channels.sms.settings import SmsSettings


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


def text_sender(host: Any, cfg: SmsSettings) -> Any:
    from channels.sms.channel import SmsChannel

    return SmsChannel(cfg, host.settings.server.public_url, host.clock.now).send_text


def tables() -> None:
    import channels.sms.pauses
    import channels.sms.recipients  # noqa: F401


def address(text: str) -> str:
    from channels.sms.phones import PhoneError, to_e164

    try:
        return to_e164(text)
    except PhoneError as exc:
        raise ValueError(str(exc)) from exc


def end_emergency(host: Any, cfg: Any, end: Any) -> str:
    from channels.sms.emergency import end_emergency as end_it

    return end_it(host, cfg, end)


def emergency_options(cfg: Any, call: Any) -> dict[str, Any]:
    from channels.sms.emergency import emergency_options as options

    return options(cfg, call)


plugin = ChannelPlugin(
    name="sms",
    title="Tin nhắn SMS (Twilio hoặc cổng tương thích)",
    build=build,
    settings="channels.sms.settings:SmsSettings",
    configured=lambda cfg: bool(cfg.account_sid),
    not_configured_hint="set channels.sms.account_sid and auth_token",
    # An `unknown` message that `coso sms reconcile` did not find at the gateway never left
    # coso, and may be sent.
    extra_moves={RETRY_WAIT: (UNKNOWN,)},
    options="channels.sms.settings:SmsOptions",
    address=address,
    rules=rules,
    routes=routes,
    cli=cli,
    text_sender=text_sender,
    tables=tables,
    migrations=str(Path(__file__).parent / "migrations"),
    end_emergency=end_emergency,
    emergency_options=emergency_options,
)
