"""A rotating schedule's picks at fan-out: for each endpoint, the content item due there
(schedules.rotation), from the activity log's entries of what reached people from this
schedule at that endpoint. The pick is the delivery's content: made once, in the row the
fan-out inserts, so a restart or a second dispatcher cannot pick differently."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, func, select

from channels.states import PROVEN
from content.models import APPROVED, ContentItem
from dispatcher.models import ActivityEntry, Delivery
from schedules.models import Occurrence
from schedules.rotation import History, pick, played

A, D, OCC = ActivityEntry.__table__, Delivery.__table__, Occurrence.__table__
C = ContentItem.__table__


def histories(engine: Engine, schedule_id: int) -> dict[int, History]:
    """Endpoint → what reached people there from this schedule: plays per content item, and
    how recent the last play of each is."""
    query = (
        select(
            A.c.endpoint_id,
            A.c.content_id,
            func.count(func.distinct(A.c.delivery_id)),
            func.max(A.c.id),
        )
        .select_from(D.join(A, A.c.delivery_id == D.c.id))
        .where(
            D.c.occurrence_id.in_(select(OCC.c.id).where(OCC.c.schedule_id == schedule_id)),
            A.c.state.in_(PROVEN),
        )
        .group_by(A.c.endpoint_id, A.c.content_id)
    )
    plays: dict[int, dict[int, int]] = defaultdict(dict)
    last: dict[int, dict[int, int]] = defaultdict(dict)
    with engine.connect() as conn:
        for endpoint, content, n, newest in conn.execute(query):
            plays[endpoint][content] = n
            last[endpoint][content] = newest
    return {e: History(plays[e], last[e]) for e in plays}


def pool_ids(engine: Engine, schedule: Any) -> tuple[list[int], dict[int, float]]:
    """The rotation's approved content ids, in its order, and their weights (by id)."""
    with engine.connect() as conn:
        ids = dict(
            conn.execute(
                select(C.c.key, C.c.id).where(
                    C.c.plan_id == schedule.plan_id,
                    C.c.key.in_(list(schedule.rotation)),
                    C.c.state == APPROVED,
                )
            ).all()
        )
    pool = [ids[key] for key in schedule.rotation if key in ids]
    weights = {ids[k]: float(w) for k, w in (schedule.rotation_weights or {}).items() if k in ids}
    return pool, weights


def picks(
    engine: Engine, schedule: Any, targets: Sequence[tuple[int, str | None]]
) -> dict[int, list[tuple[int, str | None]]]:
    """Content id → the targets it goes to at this occurrence. A pool with nothing approved
    left sends the schedule's content (its sends then fail saying why)."""
    pool, weights = pool_ids(engine, schedule)
    if not pool:
        return {schedule.content_id: list(targets)}
    known = histories(engine, schedule.id)
    out: dict[int, list[tuple[int, str | None]]] = defaultdict(list)
    empty = History()
    for target in targets:
        item = pick(schedule.rotation_policy, pool, known.get(target[0], empty), weights)
        out[item].append(target)
    return dict(out)


# Endpoints with their units: what resolve_targets gives, or a group picked from it.
Pairs = Sequence[tuple[int, str | None]]


def turns(
    engine: Engine,
    schedule: Any,
    targets: Pairs,
    count: int,
) -> list[list[tuple[int, Pairs]]]:
    """For each of a schedule's next `count` slots: (content id, the targets it goes to).
    A rotation picks per endpoint from what reached people there, each slot as if the ones
    before it reached them too (what a programme and a preview can know)."""
    if not schedule.rotation:
        return [[(schedule.content_id, targets)]] * count
    pool, weights = pool_ids(engine, schedule)
    if not pool:
        return [[(schedule.content_id, targets)]] * count
    known = histories(engine, schedule.id)
    out: list[list[tuple[int, Pairs]]] = []
    for _ in range(count):
        groups: dict[int, list[tuple[int, str | None]]] = {}
        for target in targets:
            history = known.get(target[0], History())
            item = pick(schedule.rotation_policy, pool, history, weights)
            groups.setdefault(item, []).append(target)
            known[target[0]] = played(history, item)
        out.append(list(groups.items()))
    return out
