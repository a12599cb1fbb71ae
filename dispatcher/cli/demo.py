"""The demo plan `coso serve --demo` loads: web posts to commune bulletins of Lạng Sơn and
a chime on their loudspeakers, one every minute, so something goes out within the first
minute."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from coso.clock import zone
from coso.config import Settings
from schedules.importer import import_plan
from schedules.models import Plan
from schedules.planfile import PlanFile

DEMO_NUMBER = "95/KH-UBND-DEMO"
DEMO_COMMUNES = {"06040": "Xã Thất Khê", "06046": "Xã Tràng Định", "06112": "Xã Bình Gia"}


def demo_plan(now: datetime, plan_zone: str, chime: Path) -> PlanFile:
    """The demo plan; `chime` is the loudspeaker item's audio file."""
    local_now = now.astimezone(zone(plan_zone)).replace(tzinfo=None, microsecond=0)
    first = local_now + timedelta(seconds=5)
    period_end = first.date().replace(month=12, day=31)  # its schedules end with the year
    return PlanFile.model_validate(
        {
            "plan": {
                "number": DEMO_NUMBER,
                "title": "Tuyên truyền cải cách hành chính (bản trình diễn)",
                "issuer": "UBND tỉnh Lạng Sơn",
                "organisation": "Trung tâm Văn hóa tỉnh Lạng Sơn",
                "period_start": local_now.date().replace(month=1, day=1),
                "period_end": period_end,
                "zone": plan_zone,
            },
            "targets": [
                {
                    "channel": "web",
                    "count": 2,
                    "per": "week",
                    "units": ["20"],
                    "note": "2 bài mỗi tuần trên trang tin của mỗi xã",
                }
            ],
            "content": [
                {
                    "key": "cchc-ban-tin",
                    "title": "Bản tin cải cách hành chính — {{ unit.name }}",
                    "body": "Kính gửi bà con {{ unit.name }}.\n\n"
                    "Từ nay, nhiều thủ tục hành chính có thể nộp trực tuyến trên Cổng dịch vụ "
                    "công quốc gia.\n\nBản tin lúc {{ local_time }}.",
                    "state": "approved",
                    "approved_by": "Phó Giám đốc Trung tâm",
                },
                {
                    "key": "cchc-loa",
                    "kind": "audio",
                    "title": "Bản tin phát thanh cải cách hành chính",
                    "state": "approved",
                    "approved_by": "Phó Giám đốc Trung tâm",
                    "audio": str(chime),
                },
            ],
            "endpoints": [
                {
                    "channel": "web",
                    "address": f"bulletin:{code}",
                    "name": f"Trang tin {name}",
                    "unit": code,
                }
                for code, name in DEMO_COMMUNES.items()
            ]
            + [
                {
                    "channel": "loudspeaker",
                    "address": f"loa-{code}",
                    "name": f"Cụm loa {name}",
                    "unit": code,
                }
                for code, name in DEMO_COMMUNES.items()
            ]
            + [
                {
                    "channel": "station",
                    "address": "station:06040",
                    "name": "Đài truyền thanh xã Thất Khê",
                    "unit": "06040",
                }
            ],
            "groups": [
                {
                    "name": "trang-tin-xa-demo",
                    "channel": "web",
                    "endpoints": [f"bulletin:{code}" for code in DEMO_COMMUNES],
                },
                {
                    "name": "loa-xa-demo",
                    "channel": "loudspeaker",
                    "endpoints": [f"loa-{code}" for code in DEMO_COMMUNES],
                },
            ],
            "schedules": [
                {
                    "name": "Bản tin mỗi phút (trình diễn)",
                    "content": "cchc-ban-tin",
                    "channel": "web",
                    "targets": {"groups": ["trang-tin-xa-demo"]},
                    "start": first,
                    "rrule": "FREQ=MINUTELY",
                    "until": period_end,
                    "validity": "5m",
                    "misfire_grace": "1m",
                },
                {
                    "name": "Đài xã đọc bản tin mỗi 5 phút (trình diễn)",
                    "content": "cchc-ban-tin",
                    "channel": "station",
                    "targets": {"endpoints": ["station:06040"]},
                    "start": first,
                    "rrule": "FREQ=MINUTELY;INTERVAL=5",
                    "until": period_end,
                    "validity": "5m",
                    "misfire_grace": "1m",
                },
                {
                    "name": "Phát thanh mỗi phút (trình diễn)",
                    "content": "cchc-loa",
                    "channel": "loudspeaker",
                    "targets": {"groups": ["loa-xa-demo"]},
                    "start": first,
                    "rrule": "FREQ=MINUTELY",
                    "until": period_end,
                    "validity": "5m",
                    "misfire_grace": "1m",
                },
            ],
        }
    )


def load_demo(engine: Engine, settings: Settings, now: datetime) -> bool:
    """Import the demo plan unless it is there already; True when imported."""
    with engine.connect() as conn:
        if conn.scalar(select(Plan.__table__.c.id).where(Plan.__table__.c.number == DEMO_NUMBER)):
            return False
    with tempfile.TemporaryDirectory() as tmp:
        chime = Path(tmp) / "chime.wav"  # prepared into the media folder by the import
        demo_chime().export(chime, format="wav").close()
        plan = demo_plan(now, settings.timer.default_zone, chime)
        import_plan(engine, demo_settings(settings, plan), plan, now, source="demo")
    return True


# The demo's accounts: login → (name, roles, units). Their passwords are made at the first
# `coso serve --demo` and kept beside the database (DEMO_LOGINS), never in the repository.
DEMO_USERS = {
    "admin": ("Quản trị viên", ["administrator"], []),
    "bientap": ("Biên tập viên tỉnh", ["editor", "approver"], ["20"]),
    "vanhanh": ("Người trực đài xã Thất Khê", ["operator"], ["06040"]),
}
DEMO_LOGINS = "demo-logins.txt"


def demo_logins(engine: Engine, folder: Path, now: datetime) -> list[str]:
    """The demo's accounts (made with fresh passwords the first time), as lines to print:
    "login / password (roles)"."""
    import os

    from coso.users import add_user, list_users, temporary_password

    path = folder / DEMO_LOGINS
    existing = {u.login for u in list_users(engine)}
    if path.exists() and set(DEMO_USERS) <= existing:
        return path.read_text(encoding="utf-8").splitlines()
    lines = []
    for login, (name, roles, units) in DEMO_USERS.items():
        if login in existing:
            continue
        password = temporary_password()
        add_user(
            engine,
            login=login,
            name=name,
            password=password,
            roles=roles,
            unit_codes=units,
            now=now,
        )
        lines.append(f"{login} / {password}  ({', '.join(roles)})")
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as file:
        file.writelines(line + "\n" for line in lines)
    return path.read_text(encoding="utf-8").splitlines()


def demo_settings(settings: Settings, plan: PlanFile) -> Settings:
    """The settings with schedules firing every minute allowed on the demo's channels, for
    its import only (a real plan is held to each channel's bounds)."""
    channels = {name: dict(section) for name, section in settings.channels.items()}
    for name in {s.channel for s in plan.schedules}:
        section = channels.setdefault(name, {})
        section["schedules"] = {
            **section.get("schedules", {}),
            "min_interval": "1m",
            "max_per_day": 1440,
        }
    return settings.model_copy(update={"channels": channels})


def demo_chime() -> Any:
    """Three tones, 2.4 s: something to play without shipping a recording."""
    from pydub.generators import Sine

    tones = [
        Sine(f).to_audio_segment(duration=800).fade_in(30).fade_out(200) for f in (523, 659, 784)
    ]
    return sum(tones[1:], tones[0]).apply_gain(-12)


def start_demo_endpoints(engine: Engine, settings: Settings) -> list[Any]:
    """Simulated endpoints (loudspeaker players…) for the demo plan's, from each channel
    that can simulate its own."""
    from channels import registry
    from channels.endpoints import Endpoint

    E = Endpoint.__table__
    started = []
    for plugin, cfg in registry.each(settings, "demo"):
        with engine.connect() as conn:
            addresses = list(
                conn.scalars(
                    select(E.c.address).where(
                        E.c.channel == plugin.name, E.c.unit_code.in_(list(DEMO_COMMUNES))
                    )
                )
            )
        if addresses:
            started.append(plugin.demo(settings, cfg, addresses))  # type: ignore[misc]
    return started


def load_demo_apart(settings: Settings, now: datetime) -> bool:
    """`load_demo` in a short-lived process of its own: preparing the chime loads numpy and
    pyloudnorm (about 80 MB), which `coso serve` itself never needs."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "dispatcher.cli.demo", now.isoformat()],
        input=settings.model_dump_json(),
        text=True,
        capture_output=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"loading the demo plan failed:\n{done.stderr.strip()}")
    return done.stdout.strip() == "loaded"


if __name__ == "__main__":  # load_demo_apart's process: settings on stdin, the time as argv
    import sys

    from coso.setup import open_database

    given = Settings.model_validate_json(sys.stdin.read())
    engine = open_database(given)
    loaded = load_demo(engine, given, datetime.fromisoformat(sys.argv[1]))
    engine.dispose()
    print("loaded" if loaded else "there")
