"""The memory of a long-running coso process: its allocator and its garbage collector."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# Objects allocated between young-generation collections (Python's default: 700).
YOUNG_COLLECTION_EVERY = 20_000
# glibc's mallopt(3) parameters, and the values a long-running coso process sets.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
MMAP_FROM = 128 * 1024  # bytes: a block this large gets pages of its own
ARENAS = 2
LARGE_WORK = 10_000  # items of work from which give_back_after hands memory back


def tune_allocator() -> None:
    """Call first thing in a process that runs for long (glibc only; elsewhere nothing).

    glibc hands a freed block of 128 KiB or more back to the system at once, but then
    raises that threshold to the block's size, up to 32 MiB: after the first fan-out freed
    its 50,000 targets, every later list or dict of that size came from the heap, and the
    heap keeps what it once held. The threshold stays fixed here, the heap's free top is
    given back from 128 KiB on, and the threads share two malloc arenas instead of one
    each (up to eight per CPU), each holding its own free memory."""
    libc = _glibc()
    if libc is None:
        return
    libc.mallopt(M_MMAP_THRESHOLD, MMAP_FROM)
    libc.mallopt(M_TRIM_THRESHOLD, MMAP_FROM)
    libc.mallopt(M_ARENA_MAX, ARENAS)


def give_back_free_memory() -> None:
    """Hand the allocator's free pages back to the system (glibc's malloc_trim)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def give_back_after(items: int) -> None:
    """After work over `items` endpoints, deliveries or programmes, read and dropped: from
    LARGE_WORK on, hand the memory it freed back to the system at once (a few milliseconds;
    below, what it freed is little and is used again)."""
    if items >= LARGE_WORK:
        give_back_free_memory()


def _glibc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") else None


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
    give_back_free_memory()  # what start-up read and dropped


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
