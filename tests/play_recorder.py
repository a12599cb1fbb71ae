"""Reference players in a process of their own that note every clip they start playing, for
the fault tests: coso can be killed while they keep their state and their count.

    python -m tests.play_recorder --config coso.toml --broker mqtt://127.0.0.1:1883 \
        --id-format "loa-{n:05d}" --count 1000 --out plays.json --data players/

Prints `ready` once every player's connection is up, then rewrites `--out` (player → media
file → plays) every 0.3 s until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

from coso.config import load_settings
from tests.loudspeakers import players


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--id-format", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    settings = load_settings(Path(args.config))
    ids = [args.id_format.format(n=n) for n in range(1, args.count + 1)]
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    group = players(settings, ids, data, broker_url=args.broker, per_connection=500)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    group.start()
    out = Path(args.out)

    def dump() -> None:
        counts = {
            pid: dict(Counter(name for name, _ in group.player(pid).sink.played))  # type: ignore[attr-defined]
            for pid in ids
        }
        partial = out.with_suffix(".part")
        partial.write_text(json.dumps(counts))
        os.replace(partial, out)

    deadline = time.monotonic() + 120
    while not all(link.client.is_connected() for link in group.links):
        if time.monotonic() > deadline or stop.is_set():
            raise SystemExit("players could not connect to the broker within 120 s")
        time.sleep(0.05)
    dump()
    print("ready", flush=True)
    try:
        while not stop.wait(0.3):
            dump()
    finally:
        dump()
        group.stop()


if __name__ == "__main__":
    main()
