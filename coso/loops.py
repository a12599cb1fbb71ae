"""Handing results from a worker thread to the event loops waiting for them, once per loop:
waking a loop from another thread is a system call, and a batch written for a thousand
requests (status callbacks, screens' reports, a slot's programmes) would otherwise make a
thousand."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def call_per_loop(
    items: Iterable[tuple[asyncio.AbstractEventLoop, T]], apply: Callable[[list[T]], Any]
) -> None:
    """From another thread: `apply(items of that loop)` on each loop, one wake-up each."""
    by_loop: dict[asyncio.AbstractEventLoop, list[T]] = {}
    for loop, item in items:
        by_loop.setdefault(loop, []).append(item)
    for loop, some in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop has closed
            loop.call_soon_threadsafe(apply, some)


def settle(answers: list[tuple[asyncio.Future[Any], Any]]) -> None:
    """On the waiters' loop: each future still waiting gets its answer, an exception raised
    in it or a result."""
    for done, answer in answers:
        if done.done():  # it timed out meanwhile
            continue
        if isinstance(answer, BaseException):
            done.set_exception(answer)
        else:
            done.set_result(answer)
