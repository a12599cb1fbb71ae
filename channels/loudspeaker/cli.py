"""`coso content audio`, `coso player`, `coso players …` and `coso devices`: loudspeakers."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from coso.commands import current_settings, guard, open_database, out
from coso.errors import InputError
from coso.memory import settle_after_startup
from coso.names import check_arguments


def loudspeaker_settings(settings: Settings) -> LoudspeakerSettings:
    from channels.registry import settings_of

    return settings_of(settings, "loudspeaker")


if TYPE_CHECKING:
    from channels.loudspeaker.credentials import Credentials
    from channels.loudspeaker.mqtt import BrokerAddress
    from channels.loudspeaker.settings import BrokerSettings, LoudspeakerSettings
    from coso.config import Settings


players_app = typer.Typer(
    no_args_is_help=True,
    help="Loudspeaker players: stop, volume, credentials, revoke, simulate.",
)


def _broker(
    settings: Settings, url: str | None, username: str, password: str, ca_file: str = ""
) -> tuple[BrokerSettings, BrokerAddress]:
    """The broker given on the command line (else the configured one), and its address."""
    from channels.loudspeaker.mqtt import parse_broker_url

    broker = loudspeaker_settings(settings).broker
    chosen = url or broker.url
    if not chosen:
        raise InputError("--broker", "", "give the broker, e.g. --broker mqtt://127.0.0.1:1883")
    chosen_settings = broker.model_copy(
        update={
            "url": chosen,
            "username": username or broker.username,
            "password": password or broker.password,
            "ca_file": ca_file or broker.ca_file,
        }
    )
    address = parse_broker_url(chosen, chosen_settings.username, chosen_settings.password)
    return chosen_settings, address


def _run_until_stopped(stop: threading.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


BrokerOption = Annotated[str | None, typer.Option("--broker", help="mqtt://host:1883")]
SinkOption = Annotated[
    str, typer.Option(help="auto (ffplay, aplay, else null), ffplay, aplay, null")
]


@guard
def player_command(
    player_id: Annotated[
        str, typer.Option("--id", help="This player's id (its endpoint address).")
    ],
    broker: BrokerOption = None,
    token: Annotated[
        str,
        typer.Option(envvar="COSO_PLAYER_TOKEN", help="Media token (coso players credentials ID)."),
    ] = "",
    key: Annotated[
        str,
        typer.Option(
            envvar="COSO_PLAYER_KEY",
            help="Command key (coso players credentials ID): commands not signed with it "
            "are refused.",
        ),
    ] = "",
    key_gen: Annotated[
        int, typer.Option(envvar="COSO_PLAYER_KEY_GEN", help="Generation of the key.")
    ] = 0,
    media_origin: Annotated[
        str,
        typer.Option(
            envvar="COSO_MEDIA_ORIGIN",
            help="The only scheme://host:port media is fetched from (default: server.public_url).",
        ),
    ] = "",
    data: Annotated[Path, typer.Option(help="Where the player keeps its state and media.")] = Path(
        "player-data"
    ),
    sink: SinkOption = "auto",
    username: Annotated[str, typer.Option(help="Broker user name.")] = "",
    password: Annotated[str, typer.Option(envvar="COSO_PLAYER_PASSWORD")] = "",
    ca_file: Annotated[str, typer.Option(help="TLS: the CA of the broker (mqtts://).")] = "",
) -> None:
    """Run the reference player: plays what coso sends, reports what it played."""
    check_arguments(id=player_id)
    if not key:
        raise InputError("--key", "", "thiếu khoá lệnh của loa (xem: coso players credentials ID)")
    if len(key) != 64 or any(c not in "0123456789abcdefABCDEF" for c in key):
        raise InputError(  # the value is a secret: only its length is shown
            "--key",
            f"({len(key)} ký tự)",
            "khoá lệnh không hợp lệ: phải là 64 chữ số hex (xem: coso players credentials ID)",
        )
    _players(
        [player_id],
        broker,
        lambda _pid: token,
        data,
        sink,
        username,
        password,
        True,
        ca_file,
        keys=lambda _pid: (key, key_gen),
        media_origin=media_origin or current_settings().server.public_url,
    )


@players_app.command("simulate")
@guard
def players_simulate(
    count: Annotated[int, typer.Option(min=1, help="How many players.")] = 10,
    id_format: Annotated[str, typer.Option(help="Player ids, from n = 1.")] = "sim-{n:05d}",
    broker: BrokerOption = None,
    data: Annotated[Path, typer.Option(help="Shared media cache.")] = Path("player-data"),
    sink: SinkOption = "null",
) -> None:
    """Run COUNT players in this process (demos, load tests); state is kept in memory."""
    from channels.loudspeaker.credentials import credentials, generations
    from content.media import token_secret

    settings = current_settings()
    secret = token_secret(settings.media)
    gens = generations(open_database(settings))
    ids = [id_format.format(n=n) for n in range(1, count + 1)]
    given = {
        pid: credentials(secret, pid, gens.get(pid, 0), settings.server.public_url) for pid in ids
    }
    _players(
        ids,
        broker,
        lambda pid: given[pid].token,
        data,
        sink,
        "",
        "",
        False,
        keys=lambda pid: (given[pid].key, given[pid].key_gen),
        media_origin=settings.server.public_url,
    )


def _players(  # type: ignore[no-untyped-def]
    ids, broker, tokens, data, sink, username, password, keep_state, ca_file="", **credentials
) -> None:
    from channels.loudspeaker.player.runtime import PlayerGroup
    from channels.loudspeaker.player.sinks import make_sink
    from channels.loudspeaker.protocol import ProtocolError, Topics

    settings = current_settings()
    broker_settings, address = _broker(settings, broker, username, password, ca_file)
    try:
        make_sink(sink)
        group = PlayerGroup(
            ids,
            address,
            broker_settings,
            Topics(loudspeaker_settings(settings).topic_prefix),
            data_dir=data,
            tokens=tokens,
            sink=lambda: make_sink(sink),
            keep_state=keep_state,
            **credentials,
        )
    except (ValueError, ProtocolError) as exc:
        raise InputError("player", ids[0], str(exc)) from exc
    group.start()
    settle_after_startup()
    out.print(f"{len(ids)} player(s) connecting to {address.url}")
    try:
        _run_until_stopped(threading.Event())
    finally:
        group.stop()


PlayersArg = Annotated[list[str] | None, typer.Argument(help="Player ids.")]
UnitOption = Annotated[str | None, typer.Option(help="Every player of this unit instead.")]


@players_app.command("stop")
@guard
def players_stop(
    players: PlayersArg = None, unit: UnitOption = None, broker: BrokerOption = None
) -> None:
    """Stop what these players play now (it is logged `failed`, stopped by the operator)."""
    check_arguments(players=players, unit=unit)
    from channels.loudspeaker.operator import stop_command

    _operator(players or [], unit, broker, stop_command(datetime.now(UTC)), "stop")


@players_app.command("volume")
@guard
def players_volume(
    level: Annotated[int, typer.Argument(help="0-100.")],
    players: PlayersArg = None,
    unit: UnitOption = None,
    broker: BrokerOption = None,
) -> None:
    """Set the volume of these players (it holds until changed again)."""
    check_arguments(players=players, unit=unit)
    from channels.loudspeaker.operator import volume_command

    _operator(players or [], unit, broker, volume_command(level), f"volume {level}")


def _operator(ids: list[str], unit: str | None, broker: str | None, command, what: str) -> None:  # type: ignore[no-untyped-def]
    from channels.loudspeaker.credentials import KeyRing
    from channels.loudspeaker.operator import pick_players, send_to_players
    from channels.loudspeaker.protocol import Topics
    from channels.loudspeaker.signing import sign
    from content.media import token_secret

    settings = current_settings()
    engine = open_database(settings)
    chosen = pick_players(engine, ids, unit)
    broker_settings, address = _broker(settings, broker, "", "")
    topics = Topics(loudspeaker_settings(settings).topic_prefix)
    keys = KeyRing(engine, token_secret(settings.media))

    def signed(player: str, payload: dict[str, Any]) -> dict[str, Any]:
        return sign(payload, player, *keys.key(player), datetime.now(UTC))

    acknowledged = send_to_players(address, broker_settings, topics, chosen, command, sign=signed)
    out.print(f"{what}: sent to {acknowledged} of {len(chosen)} player(s) via {address.url}")
    if acknowledged < len(chosen):
        raise typer.Exit(1)


def _credentials(player_id: str, revoke: bool) -> Credentials:
    from channels.loudspeaker.credentials import credentials, generation
    from channels.loudspeaker.credentials import revoke as bump
    from channels.loudspeaker.operator import pick_players
    from channels.loudspeaker.protocol import PLAYER_ID
    from content.media import token_secret

    if not PLAYER_ID.fullmatch(player_id):
        raise InputError(
            "player", player_id, "mã loa không hợp lệ: 1-64 chữ, số, '.', '_' hoặc '-'"
        )
    settings = current_settings()
    engine = open_database(settings)
    pick_players(engine, [player_id], None)  # a loudspeaker endpoint, else an error
    gen = bump(engine, player_id, datetime.now(UTC)) if revoke else generation(engine, player_id)
    return credentials(token_secret(settings.media), player_id, gen, settings.server.public_url)


@players_app.command("token")
@guard
def players_token(player_id: str) -> None:
    """The media download token of player PLAYER_ID (give it to that player only)."""
    check_arguments(player_id=player_id)
    out.print(_credentials(player_id, revoke=False).token)


@players_app.command("credentials")
@guard
def players_credentials(player_id: str) -> None:
    """What player PLAYER_ID is given (as the environment `coso player` reads): its media
    token, its command key and generation, coso's media origin. Give them to it only."""
    for line in _credentials(player_id, revoke=False).lines():
        out.print(line, soft_wrap=True)


@players_app.command("revoke")
@guard
def players_revoke(player_id: str) -> None:
    """Revoke player PLAYER_ID's token and command key (a stolen or replaced device): they stop
    working at once, other players are not affected. Prints its new credentials."""
    given = _credentials(player_id, revoke=True)
    out.print(
        f"{player_id}: token and key of generation {given.key_gen - 1} revoked; "
        "the player needs these new credentials:"
    )
    for line in given.lines():
        out.print(line, soft_wrap=True)


def add_commands(app: typer.Typer) -> None:
    """`coso player` and `coso players …`."""
    app.command("player")(player_command)
    app.add_typer(players_app, name="players")
