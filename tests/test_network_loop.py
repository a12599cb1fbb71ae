"""The MQTT clients' network loop waits when it has nothing to do, however its wake-ups
came: many from other threads at once (a fan-out's publishes) must not leave it going
round without waiting, a CPU's worth, which starved the process's other threads."""

from __future__ import annotations

import threading
import time

from channels.loudspeaker.mqtt_loop import NetworkLoop


def test_the_loop_waits_again_after_a_storm_of_wake_ups_from_other_threads() -> None:
    loop = NetworkLoop("test-loop")
    rounds = [0]
    real_round = loop._round

    def counted() -> None:
        rounds[0] += 1
        real_round()

    loop._round = counted  # type: ignore[method-assign]
    loop.start()
    stop = threading.Event()

    def storm() -> None:
        while not stop.is_set():
            loop.wake()

    wakers = [threading.Thread(target=storm) for _ in range(4)]
    try:
        for t in wakers:
            t.start()
        time.sleep(1.5)
        stop.set()
        for t in wakers:
            t.join()
        time.sleep(0.3)  # the last wake-ups answered
        before = rounds[0]
        time.sleep(1.0)  # nothing to do: one round, as the loop waits up to a second
        quiet = rounds[0] - before
        assert quiet <= 3, f"{quiet} rounds in a second with nothing to do"
        assert loop.alive
    finally:
        stop.set()
        loop.stop()
