"""The garbage collector of a long-running coso process."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Objects allocated between young-generation collections (Python's default: 700).
YOUNG_COLLECTION_EVERY = 20_000


def settle_after_startup() -> None:
    """Call once a process has started (settings, database, players' state loaded).

    What exists by then lives as long as the process, so the cyclic collector stops
    scanning it (gc.freeze), and it collects after 20,000 new objects instead of 700: a
    burst of thousands of messages, each allocating a few dozen short-lived objects, set off
    a collection every few messages, and the older collections walk everything the process
    holds (10,000 players' programmes in a simulation). Reference counting still frees
    almost everything at once; the collector is only for cycles."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, older, oldest)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """While a command builds something of many short-lived objects (a report: tens of
    thousands of rows and lines), the cyclic collector runs after 20,000 new objects
    instead of 700, as in a long-running process; the threshold is put back after."""
    young, older, oldest = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_COLLECTION_EVERY), older, oldest)
    try:
        yield
    finally:
        gc.set_threshold(young, older, oldest)
