"""How a screen proves it is a board: a token given by `coso boards token`, or one it gets
by showing a pairing code that an editor approves (console or `coso boards pair`)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from channels.boards import devices
from channels.boards.addresses import SCREEN
from coso.db import write
from coso.errors import InputError

D = devices.D


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same(secret: str | None, hashed: str | None) -> bool:
    return bool(secret) and bool(hashed) and hmac.compare_digest(digest(secret or ""), hashed or "")


def screen(engine: Engine, name: str) -> Any:
    """The screen board named `name` (its endpoint row), or InputError."""
    if not SCREEN.fullmatch(f"screen:{name}"):  # never asked of the database (a NUL…)
        raise InputError("board", name[:80], "không có bảng điện tử nào tên này")
    with engine.connect() as conn:
        found = devices.by_address(conn, f"screen:{name}")
    if found is None or not found.enabled:
        raise InputError("board", name, "không có bảng điện tử nào tên này")
    return found


def issue_token(engine: Engine, address: str, now: datetime) -> str:
    """A new token for a screen board (its earlier one stops working)."""
    name = address.removeprefix("screen:")
    board = screen(engine, name)
    token = secrets.token_urlsafe(24)
    with write(engine) as conn:
        devices.set_status(conn, [board.id], token_hash=digest(token), paired_at=now)
    return token


def check_token(engine: Engine, name: str, token: str | None) -> Any:
    """The board whose token this is; InputError naming the token otherwise."""
    found = check_tokens(engine, [(name, token)])[0]
    if isinstance(found, InputError):
        raise found
    return found


def check_tokens(engine: Engine, given: list[tuple[str, str | None]]) -> list[Any]:
    """For each (board name, token): the board, or the InputError that refuses it. One
    query for all (a thousand screens report at once)."""
    E = devices.E
    addresses = sorted({f"screen:{n}" for n, _ in given if SCREEN.fullmatch(f"screen:{n}")})
    found: dict[str, Any] = {}
    with engine.connect() as conn:
        for start in range(0, len(addresses), 5000):
            for row in conn.execute(
                select(E.c.id, E.c.address, E.c.name, E.c.unit_code, E.c.enabled, D.c.token_hash)
                .join(D, D.c.endpoint_id == E.c.id, isouter=True)
                .where(
                    E.c.channel == devices.CHANNEL,
                    E.c.address.in_(addresses[start : start + 5000]),
                )
            ):
                found[row.address] = row
    out: list[Any] = []
    for name, token in given:
        board = found.get(f"screen:{name}")
        if board is None or not board.enabled:
            out.append(InputError("board", name[:80], "không có bảng điện tử nào tên này"))
        elif not same(token, board.token_hash):
            out.append(InputError("token", "…", f"mã của bảng {name} không đúng hoặc đã được thay"))
        else:
            out.append(board)
    return out


def request_code(engine: Engine, name: str, now: datetime) -> tuple[str, str]:
    """A pairing code for a new screen to show, and the claim it keeps to collect its token
    once approved. A new request replaces the board's earlier one."""
    board = screen(engine, name)
    code = f"{secrets.randbelow(1_000_000):06d}"
    claim = secrets.token_urlsafe(24)
    with write(engine) as conn:
        devices.set_status(
            conn,
            [board.id],
            pair_code=code,
            pair_claim_hash=digest(claim),
            pair_requested_at=now,
            pair_approved_by=None,
            pair_token=None,
        )
    return code, claim


def approve(
    engine: Engine, address: str, code: str, by: str, now: datetime, valid: timedelta
) -> None:
    """An editor says the code on the screen is the one shown here: the screen gets a token."""
    name = address.removeprefix("screen:")
    board = screen(engine, name)
    with engine.connect() as conn:
        row = conn.execute(select(D).where(D.c.endpoint_id == board.id)).first()
    given = "".join(code.split())
    if row is None or not row.pair_code or row.pair_requested_at is None:
        raise InputError("code", code, f"bảng {name} không chờ ghép nối")
    if row.pair_requested_at + valid < now:
        raise InputError("code", code, "mã ghép nối đã hết hạn: mở lại trang trên bảng")
    if not hmac.compare_digest(given, row.pair_code):
        raise InputError("code", code, f"không phải mã đang hiện trên bảng {name}")
    token = secrets.token_urlsafe(24)
    with write(engine) as conn:
        conn.execute(
            update(D)
            .where(D.c.endpoint_id == board.id)
            .values(
                token_hash=digest(token),
                pair_token=token,
                pair_code=None,
                pair_approved_by=by,
                paired_at=now,
            )
        )


def collect(engine: Engine, name: str, claim: str) -> str | None:
    """The token of an approved pairing, once, for the screen holding the claim; None while
    it waits. InputError when the claim is not this board's pending one."""
    board = screen(engine, name)
    with write(engine) as conn:
        row = conn.execute(select(D).where(D.c.endpoint_id == board.id)).first()
        if row is None or not same(claim, row.pair_claim_hash):
            raise InputError("claim", "…", f"bảng {name} không có yêu cầu ghép nối này")
        if not row.pair_token:
            return None
        conn.execute(
            update(D)
            .where(D.c.endpoint_id == board.id)
            .values(pair_token=None, pair_claim_hash=None)
        )
        return str(row.pair_token)


def pending(engine: Engine, now: datetime, valid: timedelta) -> list[Any]:
    """Screens showing a pairing code now (endpoint rows with the code and when)."""
    E = devices.E
    with engine.connect() as conn:
        rows = conn.execute(
            select(E.c.id, E.c.address, E.c.name, E.c.unit_code, D.c.pair_requested_at)
            .join(D, D.c.endpoint_id == E.c.id)
            .where(D.c.pair_code.is_not(None))
            .order_by(E.c.address)
        ).all()
    return [r for r in rows if r.pair_requested_at and r.pair_requested_at + valid >= now]
