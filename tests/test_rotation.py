"""Rotation over a year: for random pools, weekly occurrences at several endpoints and
random failures per endpoint (a commune offline, a player broken), each endpoint gets what
is due there — nothing repeats before the pool is exhausted (least-played), a serial never
skips an episode (in-order), shares follow the weights (weighted) — and a pool edited
mid-rotation keeps the rule for the rest."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from schedules.rotation import IN_ORDER, LEAST_PLAYED, WEIGHTED, History, pick, played

WEEKS = 52
pools = st.lists(st.integers(1, 50), min_size=1, max_size=6, unique=True)
# per endpoint and week: did the pick reach people there?
outcomes = st.lists(st.lists(st.booleans(), min_size=WEEKS, max_size=WEEKS), min_size=1, max_size=4)


def run(
    policy: str, pool: list[int], reached: list[list[bool]], weights: dict[int, float] | None = None
) -> list[list[int]]:
    """Each endpoint's items that reached people, in order."""
    done: list[list[int]] = []
    for weeks in reached:
        history, seq = History(), []
        for ok in weeks:
            item = pick(policy, pool, history, weights)
            if ok:
                history = played(history, item)
                seq.append(item)
        done.append(seq)
    return done


@settings(max_examples=150, deadline=None)
@given(pools, outcomes)
def test_least_played_never_repeats_before_the_pool_is_exhausted(
    pool: list[int], reached: list[list[bool]]
) -> None:
    for seq in run(LEAST_PLAYED, pool, reached):
        for start in range(0, len(seq) - len(pool) + 1, len(pool)):
            assert sorted(seq[start : start + len(pool)]) == sorted(pool), seq
        counts = Counter(seq)
        assert max(counts[c] for c in pool) - min(counts[c] for c in pool) <= 1


@settings(max_examples=150, deadline=None)
@given(pools, outcomes)
def test_in_order_continues_where_each_endpoint_stopped_and_skips_nothing(
    pool: list[int], reached: list[list[bool]]
) -> None:
    for seq in run(IN_ORDER, pool, reached):
        assert seq == [pool[i % len(pool)] for i in range(len(seq))]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 50), st.integers(1, 5)), min_size=1, max_size=5,
             unique_by=lambda t: t[0]),
    outcomes,
)  # fmt: skip
def test_weighted_shares_follow_the_weights(
    pool_weights: list[tuple[int, int]], reached: list[list[bool]]
) -> None:
    pool = [c for c, _ in pool_weights]
    weights = {c: float(w) for c, w in pool_weights}
    total = sum(weights.values())
    for seq in run(WEIGHTED, pool, reached, weights):
        counts = Counter(seq)
        for c in pool:  # never further than one play from its share
            assert abs(counts[c] - len(seq) * weights[c] / total) <= 1.0, (seq, weights)


@settings(max_examples=150, deadline=None)
@given(pools, outcomes, st.integers(1, WEEKS - 1), st.integers(51, 60), st.booleans())
def test_a_pool_edited_mid_rotation_keeps_the_rule_for_the_rest(
    pool: list[int], reached: list[list[bool]], week: int, added: int, retire: bool
) -> None:
    """An item added (or the first one retired) at `week`: every later pick at an endpoint
    is one of the items of the pool played least there, and an added item comes before any
    item plays again."""
    later = [*pool[1:]] if retire and len(pool) > 1 else [*pool, added]
    for weeks in reached:
        history = History()
        for n, ok in enumerate(weeks):
            current = pool if n < week else later
            item = pick(LEAST_PLAYED, current, history)
            fewest = min(history.plays.get(c, 0) for c in current)
            assert history.plays.get(item, 0) == fewest
            if ok:
                history = played(history, item)


def test_an_item_that_failed_at_one_commune_is_still_due_there_while_the_others_move_on() -> None:
    pool = [1, 2, 3, 4]
    # Three communes, six weeks; B was offline in week 2.
    reached = [[True] * 6, [True, False, True, True, True, True], [True] * 6]
    a, b, c = run(IN_ORDER, pool, reached)
    assert a == c == [1, 2, 3, 4, 1, 2]
    assert b == [1, 2, 3, 4, 1]  # week 3 gave B the programme it missed in week 2
    a, b, c = run(LEAST_PLAYED, pool, reached)
    assert b[:2] == [1, 2] and sorted(b[:4]) == pool
