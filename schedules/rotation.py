"""Rotation: a schedule that takes a pool of content items instead of one picks, at each
occurrence and for each endpoint, the item due **there**, from what really went out there
(the deliveries that reached people, as the activity log has them), not from a cursor: an
item that failed or was missed at one commune is still due at that commune while the
others move on.

- `least-played`: the item played least often at this endpoint; of those, the one played
  longest ago (never played first, in pool order). Nothing repeats at an endpoint before
  the pool is exhausted, and an item added to the pool is due at once.
- `in-order`: a serial: the first item, in pool order, of those played least often there.
  It continues where that endpoint stopped and never skips an episode (one that failed is
  played again next time); episodes added at the end follow.
- `weighted`: each item's share of the plays at an endpoint follows its weight: the item
  furthest behind its share goes next (ties: pool order).

Items retired or withdrawn from the pool are simply not in `pool` any more: what they
played stays in the log and counts for nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

LEAST_PLAYED, IN_ORDER, WEIGHTED = "least-played", "in-order", "weighted"
POLICIES = (LEAST_PLAYED, IN_ORDER, WEIGHTED)


@dataclass(frozen=True)
class History:
    """What reached people at one endpoint from this rotation: plays per content item, and
    the order of the last play of each (a higher number: more recent)."""

    plays: Mapping[int, int] = field(default_factory=dict)
    last: Mapping[int, int] = field(default_factory=dict)


def pick(
    policy: str,
    pool: Sequence[int],
    history: History,
    weights: Mapping[int, float] | None = None,
) -> int:
    """The content item due at an endpoint with this history."""
    if not pool:
        raise ValueError("a rotation needs at least one content item")
    plays = history.plays
    order = {item: i for i, item in enumerate(pool)}
    if policy == LEAST_PLAYED:
        return min(pool, key=lambda c: (plays.get(c, 0), history.last.get(c, -1), order[c]))
    if policy == IN_ORDER:
        return min(pool, key=lambda c: (plays.get(c, 0), order[c]))
    if policy == WEIGHTED:
        w = {c: max(float((weights or {}).get(c, 1.0)), 0.0) for c in pool}
        total_w = sum(w.values()) or float(len(pool))
        n = sum(plays.get(c, 0) for c in pool) + 1
        return max(pool, key=lambda c: (w[c] / total_w * n - plays.get(c, 0), -order[c]))
    raise ValueError(f"rotation policy {policy!r} is not one of {', '.join(POLICIES)}")


def played(history: History, item: int) -> History:
    """`history` after one more play of `item` (for previews: what would happen if every
    pick reached people)."""
    plays = dict(history.plays)
    plays[item] = plays.get(item, 0) + 1
    last = dict(history.last)
    last[item] = max(last.values(), default=-1) + 1
    return History(plays, last)
