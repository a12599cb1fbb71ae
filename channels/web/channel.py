"""Web posts: coso's own public bulletin, and WordPress sites through their REST API.

Endpoint addresses: ``bulletin:<unit code>`` publishes to coso's bulletin (shown at
/bulletin); ``wordpress:<site name>`` publishes to a site configured under
[[channels.web.sites]]. Both are safe to re-send after a crash: the bulletin keeps one
post per delivery, and a WordPress post carries the slug ``coso-<delivery id>``, looked
up before posting again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine, select
from sqlmodel import Field, SQLModel

from channels.base import Accepted, Channel, Outbound, PermanentSendError, TransientSendError
from channels.web.settings import WebChannelSettings, WordPressSite
from coso.db import insert_ignoring_duplicates, write
from coso.http_client import LazyClient

if TYPE_CHECKING:
    import httpx

PUBLISHED = "published"
PIN_WITHOUT_END = timedelta(days=1)
WP_STATUSES = "publish,future,draft,pending,private"


class BulletinPost(SQLModel, table=True):
    __tablename__ = "bulletin_post"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(unique=True)
    unit_code: str | None = Field(default=None, index=True)
    title: str
    body_html: str
    plan_number: str = ""
    published_at: datetime = Field(index=True)
    # An emergency stays at the top of the bulletin and its feed until this time (its
    # validity), or until it is cancelled.
    pinned_until: datetime | None = None


class WebChannel(Channel):
    name = "web"
    resend_safe = True

    def __init__(
        self,
        engine: Engine,
        settings: WebChannelSettings,
        now: Callable[[], datetime],
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._engine = engine
        self._sites = {site.name: site for site in settings.sites}
        self._now = now
        self._http = LazyClient(timeout=settings.timeout, transport=transport)

    def send(self, message: Outbound) -> Accepted:
        kind, _, target = message.address.partition(":")
        if kind == "bulletin":
            return self._publish_bulletin(message)
        if kind == "wordpress":
            site = self._sites.get(target)
            if site is None:
                raise PermanentSendError(
                    f"no WordPress site named {target!r} in channels.web.sites"
                )
            return self._publish_wordpress(site, message)
        raise PermanentSendError(f"address {message.address!r} is not bulletin:… or wordpress:…")

    def close(self) -> None:
        self._http.close()

    def _publish_bulletin(self, message: Outbound) -> Accepted:
        table = BulletinPost.__table__
        row = {
            "delivery_id": message.delivery_id,
            "unit_code": message.unit_code,
            "title": message.title,
            "body_html": message.body,
            "plan_number": message.extra.get("plan_number", ""),
            "published_at": self._now(),
            "pinned_until": _pin_end(message, self._now()),
        }
        with write(self._engine) as conn:
            conn.execute(insert_ignoring_duplicates(conn, table), [row])
            post_id = conn.scalar(
                select(table.c.id).where(table.c.delivery_id == message.delivery_id)
            )
        return Accepted(state="delivered", event=PUBLISHED, provider_id=f"bulletin/{post_id}")

    def _publish_wordpress(self, site: WordPressSite, message: Outbound) -> Accepted:
        slug = f"coso-{message.delivery_id}"
        posts = site.url.rstrip("/") + "/wp-json/wp/v2/posts"
        auth = (site.username, site.application_password)
        if message.attempt > 1:
            existing = self._request(
                "GET", posts, auth, params={"slug": slug, "status": WP_STATUSES}
            )
            if isinstance(existing, list) and existing:
                return _wp_accepted(site, existing[0])
        body = {
            "title": message.title,
            "content": message.body,
            "status": site.status,
            "slug": slug,
        }
        return _wp_accepted(site, self._request("POST", posts, auth, json=body))

    def _request(self, method: str, url: str, auth: tuple[str, str], **kwargs: object) -> object:
        import httpx

        try:
            response = self._http.client.request(method, url, auth=auth, **kwargs)  # type: ignore[arg-type]
        except httpx.TimeoutException as exc:
            raise TransientSendError(f"timeout talking to {url}") from exc
        except httpx.TransportError as exc:
            raise TransientSendError(f"cannot reach {url}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = response.headers.get("Retry-After")
            raise TransientSendError(
                f"HTTP {response.status_code} from {url}",
                retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        if response.status_code >= 400:
            code, text = _wp_error(response)
            raise PermanentSendError(f"HTTP {response.status_code} {code}: {text}", code=code)
        return response.json()


def _pin_end(message: Outbound, now: datetime) -> datetime | None:
    """An emergency is pinned for its validity (a day when it has none)."""
    if message.priority != "emergency":
        return None
    return message.expires_at or now + PIN_WITHOUT_END


def _wp_accepted(site: WordPressSite, post: object) -> Accepted:
    if not isinstance(post, dict) or "id" not in post:
        raise TransientSendError(f"{site.name}: unexpected reply {str(post)[:80]!r}")
    return Accepted(
        state="delivered",
        event=PUBLISHED,
        provider_id=f"wordpress:{site.name}/{post['id']}",
        detail=str(post.get("link", "")) or None,
    )


def _wp_error(response: httpx.Response) -> tuple[str, str]:
    try:
        data = response.json()
        return str(data.get("code", "error")), str(data.get("message", ""))[:200]
    except ValueError:
        return "error", response.text[:200]
