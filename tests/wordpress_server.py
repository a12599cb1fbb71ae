"""A local HTTP server speaking the part of the WordPress REST API coso uses.

It checks method, path, Basic auth with an application password, and the JSON body, like
WordPress does, and can be told to fail the next requests with a given status.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.http_fakes import JsonHandler

USER, PASSWORD = "coso", "abcd EFGH 1234 ijkl MNOP 6789"
POSTS = "/wp-json/wp/v2/posts"


class WordPressServer:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.fail_next: list[int] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> WordPressServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(JsonHandler):
            def _authorised(self) -> bool:
                expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {expected}":
                    self._reply(
                        401,
                        {
                            "code": "rest_cannot_create",
                            "message": "Sorry, you are not allowed to create posts as this user.",
                            "data": {"status": 401},
                        },
                    )
                    return False
                return True

            def _failing(self) -> bool:
                with server.lock:
                    status = server.fail_next.pop(0) if server.fail_next else None
                if status is None:
                    return False
                self._reply(status, {"code": "error", "message": "try later"}, {"Retry-After": "1"})
                return True

            def do_GET(self) -> None:
                url = urlparse(self.path)
                server.requests.append(("GET", url.path))
                if url.path != POSTS:
                    self._reply(404, {"code": "rest_no_route", "message": "No route"})
                    return
                if not self._authorised() or self._failing():
                    return
                slug = parse_qs(url.query).get("slug", [""])[0]
                with server.lock:
                    found = [p for p in server.posts if p["slug"] == slug]
                self._reply(200, found)

            def do_POST(self) -> None:
                url = urlparse(self.path)
                server.requests.append(("POST", url.path))
                if url.path != POSTS:
                    self._reply(404, {"code": "rest_no_route", "message": "No route"})
                    return
                if not self._authorised() or self._failing():
                    return
                length = int(self.headers.get("Content-Length", "0"))
                if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                    self._reply(400, {"code": "rest_invalid_json", "message": "not JSON"})
                    return
                body = json.loads(self.rfile.read(length))
                missing = [k for k in ("title", "content", "status", "slug") if not body.get(k)]
                if missing:
                    self._reply(
                        400,
                        {
                            "code": "rest_missing_callback_param",
                            "message": f"Missing parameter(s): {missing}",
                        },
                    )
                    return
                with server.lock:
                    post = {
                        "id": len(server.posts) + 1,
                        "slug": body["slug"],
                        "status": body["status"],
                        "title": {"raw": body["title"]},
                        "content": {"raw": body["content"]},
                        "link": f"{server.url}/?p={len(server.posts) + 1}",
                    }
                    server.posts.append(post)
                self._reply(201, post)

        return Handler
