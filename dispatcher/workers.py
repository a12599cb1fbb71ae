"""Dispatcher processes and their heartbeats: whose claims are orphaned after a crash."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select, update

from channels.states import SENDING
from coso.db import insert_ignoring_duplicates, write
from dispatcher.models import Delivery, DispatcherWorker

W = DispatcherWorker.__table__
D = Delivery.__table__
HOST = socket.gethostname()


def new_worker_id() -> str:
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def register(engine: Engine, worker: str, now: datetime) -> None:
    host, pid, _ = worker.rsplit(":", 2)
    with write(engine) as conn:
        conn.execute(
            insert_ignoring_duplicates(conn, W),
            [{"id": worker, "host": host, "pid": int(pid), "started_at": now, "heartbeat_at": now}],
        )


def heartbeat(engine: Engine, worker: str, now: datetime) -> None:
    with write(engine) as conn:
        conn.execute(update(W).where(W.c.id == worker).values(heartbeat_at=now))


def orphaned_claims(engine: Engine, now: datetime, lease: timedelta, me: str) -> list[str]:
    """Workers holding `sending` deliveries that are gone: no heartbeat within the lease,
    never registered, or a process on this host that is no longer running."""
    with engine.connect() as conn:
        claimers = set(
            conn.scalars(
                select(D.c.claimed_by)
                .where(D.c.state == SENDING, D.c.claimed_by.is_not(None))
                .distinct()
            )
        )
        claimers.discard(me)
        if not claimers:
            return []
        known = {r.id: r for r in conn.execute(select(W).where(W.c.id.in_(claimers)))}
    dead = []
    for worker in sorted(claimers):
        row = known.get(worker)
        if (
            row is None
            or row.heartbeat_at < now - lease
            or (row.host == HOST and not _running(row.pid))
        ):
            dead.append(worker)
    return dead


def forget(engine: Engine, workers: list[str]) -> None:
    if workers:
        with write(engine) as conn:
            conn.execute(delete(W).where(W.c.id.in_(workers)))


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
