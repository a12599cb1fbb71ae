"""The twilio client's HTTP seam, over urllib3: one connection pool per channel, shared by
the sending threads. twilio's own client goes through a `requests` session, whose request
preparation (hooks, cookies, proxies read from the environment on every call) cost more
than the request itself; this one builds the form and sends it.

urllib3 never retries here: a POST repeated after its answer was lost is a second message
on someone's phone. Whether a failed request may have reached the gateway is `reached`.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from base64 import b64encode
from typing import Any
from urllib.parse import urlencode, urlsplit

import certifi
import urllib3
from twilio.http import HttpClient
from twilio.http.response import Response
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError

log = logging.getLogger("channels.sms.http")
log.setLevel(logging.WARNING)  # never the requests themselves: they carry numbers and texts

JSON_TYPES = ("application/json", "application/scim+json")


class GatewayUnreachable(Exception):
    """No connection was made: the request never left."""


class GatewayNoAnswer(Exception):
    """The request may have reached the gateway, and no answer came back."""


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, NO_PROXY…), as `requests`
    honours them; read once, when the client is made."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class GatewayHttp(HttpClient):
    """A twilio `HttpClient` over one urllib3 pool of `connections` connections, keeping the
    last response of each thread (for Retry-After)."""

    def __init__(self, base_url: str, timeout: float, connections: int) -> None:
        super().__init__(log, is_async=False, timeout=timeout)
        options: dict[str, Any] = {
            "maxsize": max(1, connections),
            "block": False,
            "retries": False,
            "timeout": urllib3.Timeout(connect=timeout, read=timeout),
            "ca_certs": certifi.where(),
        }
        proxy = proxy_for(base_url)
        self.pool: urllib3.PoolManager = (
            urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
        )
        self._local = threading.local()

    @property
    def last(self) -> Response | None:
        """This thread's last response, if its last request had one."""
        return getattr(self._local, "last", None)

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        self._local.last = None
        if params:
            url = f"{url}?{urlencode(params, doseq=True)}"
        sent = dict(headers or {})
        body: str | None = None
        if data is not None:
            if sent.get("Content-Type") in JSON_TYPES:
                body = json.dumps(data)
            else:
                body = urlencode(data, doseq=True)
                sent["Content-Type"] = "application/x-www-form-urlencoded"
        if auth is not None:
            sent["Authorization"] = "Basic " + b64encode(":".join(auth).encode()).decode()
        wait = self.timeout if timeout is None else timeout
        try:
            answer = self.pool.request(
                method.upper(),
                url,
                body=body,
                headers=sent,
                redirect=allow_redirects,
                timeout=urllib3.Timeout(connect=wait, read=wait) if wait else None,
            )
        except (NewConnectionError, ConnectTimeoutError) as exc:
            raise GatewayUnreachable(str(exc)) from exc
        except HTTPError as exc:  # read timeout, connection dropped after sending…
            raise GatewayNoAnswer(str(exc)) from exc
        self._local.last = Response(answer.status, answer.data.decode("utf-8"), answer.headers)
        return self._local.last
