"""An HTTP client made at its first request. httpx and what it imports take about 3 MB of
a process; a channel that may post over HTTP (web posts, LED board controllers) holds one of
these instead, so a `coso serve` that never posts does not carry httpx."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx


class LazyClient:
    """`httpx.Client(**options)`, made when `client` is first asked for (from any thread)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import httpx

                    self._client = httpx.Client(**self._options)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
