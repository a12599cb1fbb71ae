"""Hypothesis strategies for hostile input: JSON values with hostile leaves, player-protocol
payloads that are almost valid, plan files from the grammar of docs/plan-file.md with one
field broken, endpoint and recipient files with bad cells or encodings, settings files with
bad values or unknown keys.

Each generated case carries what a clear refusal must name (`field`), so a test can check
the message as well as the refusal."""

from __future__ import annotations

import codecs
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from hypothesis import strategies as st

# --- leaves -------------------------------------------------------------------------------

NUL, RTL = "\x00", "\u202e"

hostile_ints = st.one_of(
    st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63) - 1]),
    st.integers(min_value=2**63, max_value=2**256),
    st.integers(max_value=0),
)
hostile_floats = st.one_of(
    st.sampled_from([math.inf, -math.inf, math.nan, 1.5, -0.0, 1e308]),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
)
huge_text = st.sampled_from([10_000, 100_000, 1_000_000]).map(lambda n: "x" * n)
odd_text = st.one_of(
    st.sampled_from(["", " ", NUL, f"a{NUL}b", RTL, f"{RTL}gnp.exe", "\ufeff", "\u200b", "🔊"]),
    st.text(max_size=20),
)
hostile_text = st.one_of(odd_text, huge_text)
wrong_types = st.one_of(
    st.booleans(),
    st.none(),
    hostile_floats,
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
hostile_scalars = st.one_of(hostile_ints, hostile_floats, hostile_text, wrong_types)

json_values = st.recursive(
    hostile_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

# Raw payloads no JSON value produces: invalid UTF-8, nesting deeper than any parser should
# follow (bounded, so a test stays fast), truncated documents.
invalid_utf8 = st.sampled_from(
    [b"\xff\xfe", b'{"v":1,"type":"\xc3\x28"}', b"\xed\xa0\x80", b'{"v":1,"slot":"\x80"}']
)
deep_nesting = st.sampled_from([1_000, 10_000, 100_000]).map(
    lambda n: ("[" * n + "]" * n).encode()
) | st.sampled_from([1_000, 100_000]).map(lambda n: ('{"v":1,"records":' * n).encode())
raw_garbage = st.one_of(
    invalid_utf8,
    deep_nesting,
    st.binary(max_size=64),
    st.sampled_from([b"", b"null", b"[]", b'"v"', b"1e999999", b'{"v":1', b"{" * 3]),
)

# Times: unparseable, zoneless, overflowing when converted to UTC, implausible.
overflowing_times = st.sampled_from(
    ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+23:59"]
)
bad_times = st.one_of(
    overflowing_times,
    st.sampled_from(
        ["", "now", "2021-13-45T00:00:00Z", "2021-05-02T23:00:00", "2021-05-02T25:61:00Z"]
    ),
    hostile_ints,
    wrong_types,
    huge_text,
)


# --- player protocol ----------------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    """One MQTT payload and what was broken in it."""

    what: str
    raw: bytes

    def __repr__(self) -> str:  # hypothesis prints failing examples: keep them readable
        return f"Payload({self.what!r}, {self.raw[:120]!r}{'…' if len(self.raw) > 120 else ''})"


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


EVENT_TYPES = ["received", "downloaded", "started", "finished", "failed", "expired"]
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "v": st.one_of(st.sampled_from([0, 2, "1", None, [1]]), hostile_ints),
    "type": st.one_of(hostile_text, wrong_types).filter(
        lambda t: t not in EVENT_TYPES and t not in ("events", "as_run")
    ),
    "delivery_id": st.one_of(
        hostile_ints, hostile_floats, st.booleans(), st.sampled_from(["12", "", [12], {"id": 1}])
    ),
    "slot": st.one_of(
        hostile_text,
        wrong_types,
        st.sampled_from(
            [
                "99999999999999999999999@2021-05-02T23:00:00.000Z",
                "-1@2021-05-02T23:00:00.000Z",
                "17@0001-01-01T00:00:00.000Z",
                "17@9999-12-31T23:59:59.000Z",
                "17@not-a-time",
                "@",
            ]
        ),
    ),
    "at": bad_times,
    "started_at": bad_times,
    "seq": st.one_of(hostile_ints, wrong_types),
    "reason": st.one_of(hostile_text, wrong_types),
}


def player_events(unknown_delivery: int, now: str) -> st.SearchStrategy[Payload]:
    """An event about a delivery coso never sent (valid, it would change no delivery) with
    one field given a hostile value, alone or inside an `events` / `as_run` batch; or, with
    no delivery id, a record naming only a hostile `slot`; or raw garbage."""

    @st.composite
    def mutated(draw: st.DrawFn) -> Payload:
        event = {
            "v": 1,
            "type": draw(st.sampled_from(EVENT_TYPES)),
            "delivery_id": unknown_delivery,
            "seq": 1,
            "at": now,
            "started_at": now,
            "reason": "download",
        }
        field = draw(st.sampled_from(sorted(FIELD_VALUES)))
        event[field] = draw(FIELD_VALUES[field])
        if field == "slot" and draw(st.booleans()):
            del event["delivery_id"]  # a programme slot's record names only its slot
        wrap = draw(st.sampled_from([None, "events", "as_run"]))
        if wrap is not None and field != "v":
            event.pop("v")
            payload: dict[str, Any] = {"v": 1, "type": wrap, "records": [event]}
            return Payload(f"{wrap}: {field}", _dump(payload))
        return Payload(field, _dump(event))

    bad_batches = st.builds(
        lambda kind, records: Payload(
            f"{kind}: records", _dump({"v": 1, "type": kind, "records": records})
        ),
        st.sampled_from(["events", "as_run"]),
        json_values,
    )
    return st.one_of(
        mutated(),
        bad_batches,
        raw_garbage.map(lambda raw: Payload("raw", raw)),
        json_values.map(lambda v: Payload("json", _dump(v))),
    )


def player_status(player: str, now: str) -> st.SearchStrategy[Payload]:
    """A status message with one field hostile."""
    fields = {
        "v": FIELD_VALUES["v"],
        "state": st.one_of(hostile_text, wrong_types),
        "player": st.one_of(hostile_text, wrong_types),
        "at": bad_times,
    }

    @st.composite
    def mutated(draw: st.DrawFn) -> Payload:
        status: dict[str, Any] = {"v": 1, "state": "online", "player": player, "at": now}
        field = draw(st.sampled_from(sorted(fields)))
        status[field] = draw(fields[field])
        return Payload(f"status {field}", _dump(status))

    return st.one_of(mutated(), raw_garbage.map(lambda raw: Payload("status raw", raw)))


# --- TOML ---------------------------------------------------------------------------------

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_value(value: Any) -> str:
    """A value as TOML writes it (strings escaped, dates bare, tables inline)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def toml_key(key: str) -> str:
    return key if _BARE.match(key) else toml_value(key)


def toml_document(doc: dict[str, Any]) -> str:
    """Tables (`[name]`) and arrays of tables (`[[name]]`) of plain key/values."""
    lines: list[str] = []
    for name, section in doc.items():
        tables = section if isinstance(section, list) else [section]
        for table in tables:
            lines.append(f"[[{name}]]" if isinstance(section, list) else f"[{name}]")
            lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
            lines.append("")
    return "\n".join(lines)


# toml can hold no None, and no lone surrogate
toml_scalars = st.one_of(
    hostile_ints,
    hostile_floats,
    odd_text.filter(lambda s: not any("\ud800" <= c <= "\udfff" for c in s)),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.sampled_from([date(1, 1, 1), datetime(9999, 12, 31, 23, 59), {"a": 1}]),
)


# --- plan files ---------------------------------------------------------------------------


def valid_plan() -> dict[str, Any]:
    """The grammar of docs/plan-file.md, one of each section: a valid web plan (it is
    tests/plans.py's WEEKLY_PLAN, as data)."""
    return {
        "plan": {
            "number": "95/KH-UBND",
            "title": "Tuyên truyền cải cách hành chính năm 2021",
            "issuer": "UBND tỉnh Lạng Sơn",
            "organisation": "Trung tâm Văn hóa tỉnh Lạng Sơn",
            "period_start": date(2021, 4, 21),
            "period_end": date(2021, 12, 31),
            "zone": "Asia/Ho_Chi_Minh",
        },
        "targets": [{"channel": "web", "count": 2, "per": "week", "units": ["20"]}],
        "content": [
            {
                "key": "cchc",
                "title": "Thủ tục mới — {{ unit.name }}",
                "body": "Kính gửi bà con {{ unit.name }}.\n\nBản tin lúc {{ local_time }}.",
                "state": "approved",
            }
        ],
        "endpoints": [
            {"channel": "web", "address": f"bulletin:{code}", "unit": code}
            for code in ("06040", "06046", "06112")
        ],
        "groups": [{"name": "hai-xa", "channel": "web", "endpoints": ["bulletin:06046"]}],
        "schedules": [
            {
                "name": "CCHC Mon/Thu",
                "content": "cchc",
                "channel": "web",
                "targets": {"units": ["20"]},
                "start": datetime(2021, 5, 3, 6, 0),
                "rrule": "FREQ=WEEKLY;BYDAY=MO,TH",
                "validity": "12h",
                "misfire_grace": "30m",
                "until": date(2021, 12, 31),
                "priority": "normal",
            }
        ],
    }


bad_durations = st.one_of(
    st.sampled_from(["-1h", "0s", "99999999999d", "1h30", "12 giờ", "", "1e9s", f"1h{NUL}"]),
    toml_scalars,
)
bad_rrules = st.one_of(
    st.sampled_from(
        [
            "FREQ=SECONDLY;INTERVAL=0;UNTIL=20211231T000000",
            "FREQ=DAILY;INTERVAL=0;UNTIL=20211231T000000",
            "FREQ=SECONDLY;UNTIL=20211231T000000",
            "FREQ=WEEKLY;BYDAY=XX",
            "FREQ=FORTNIGHTLY",
            "FREQ=WEEKLY;BYDAY=MO\nRRULE:FREQ=SECONDLY",
            "FREQ=WEEKLY;UNTIL=99991231T000000",
            "",
        ]
    ),
    st.text(max_size=30).filter(lambda s: "FREQ=" not in s),
    toml_scalars.filter(lambda v: not isinstance(v, str)),
)
enum_text = st.one_of(odd_text, st.sampled_from(["Approved", "urgent", "day ", "tuần"]))
PLAN_MUTATIONS: dict[tuple[str, str], st.SearchStrategy[Any]] = {
    ("plan", "number"): st.one_of(
        st.sampled_from(["", "  ", NUL, f"95/KH{NUL}-UBND", f"{RTL}95/KH-UBND"]),
        hostile_ints,
        st.lists(st.text(max_size=3), max_size=2),
    ),
    ("plan", "title"): st.one_of(hostile_ints, st.booleans(), st.lists(st.integers(), max_size=2)),
    ("plan", "period_start"): st.one_of(
        st.sampled_from([date(2022, 1, 1), "hôm qua", "21/04/2021"]), hostile_ints
    ),
    ("plan", "period_end"): st.one_of(
        st.sampled_from([date(1, 1, 1), date(2021, 1, 1), "cuối năm"]), hostile_ints
    ),
    ("plan", "zone"): st.one_of(
        st.sampled_from(["Asia/Hanoi", "../../etc/passwd", f"Asia/Ho_Chi_Minh{NUL}", "", "UTC+7"]),
        hostile_ints,
    ),
    ("plan", "past_period"): enum_text,
    ("targets", "count"): st.one_of(st.integers(max_value=-1), st.just("hai"), hostile_floats),
    ("targets", "per"): enum_text,
    ("targets", "channel"): st.sampled_from(["bồ câu", "", "WEB", "sms "]),
    ("targets", "units"): st.sampled_from([["99"], [""], [NUL], "20", [20]]),
    ("content", "kind"): enum_text,
    ("content", "state"): enum_text,
    ("content", "title"): st.one_of(
        st.sampled_from(["{{ unit.name", "{{ unit.ten }}", "{% if %}", "{{ ''.__class__ }}"]),
        hostile_ints,
    ),
    ("content", "body"): st.sampled_from(
        ["{{ unit.ten_xa }}", "{% for %}", "{{ plan.__init__.__globals__ }}", 5]
    ),
    ("content", "key"): st.one_of(st.sampled_from(["", "khac", NUL]), hostile_ints),
    ("endpoints", "channel"): st.sampled_from(["bồ câu", "", "Web", "web "]),
    ("endpoints", "address"): st.one_of(
        st.sampled_from(["", "bulletin:", "bulletin:06040 x", f"bulletin:06040{NUL}", RTL]),
        hostile_ints,
    ),
    ("endpoints", "unit"): st.one_of(st.sampled_from(["99999", NUL, "06040 "]), hostile_ints),
    ("groups", "endpoints"): st.sampled_from([["bulletin:99999"], "bulletin:06040", [5], [""]]),
    ("groups", "channel"): st.sampled_from(["bồ câu", ""]),
    ("schedules", "content"): st.one_of(st.sampled_from(["khac", "", "CCHC"]), hostile_ints),
    ("schedules", "channel"): st.sampled_from(["bồ câu", "", "Web"]),
    ("schedules", "targets"): st.sampled_from(
        [{}, {"units": ["99"]}, {"units": [5]}, {"dia_ban": ["20"]}, "20", {"endpoints": ["x"]}]
    ),
    ("schedules", "start"): st.one_of(
        st.sampled_from(
            [datetime(1, 1, 1), datetime(1, 1, 1, 0, 0), datetime(9999, 12, 31), "sáng thứ hai"]
        ),
        hostile_ints,
    ),
    ("schedules", "rrule"): bad_rrules,
    ("schedules", "until"): st.one_of(st.sampled_from([date(1, 1, 1), "mãi mãi"]), hostile_ints),
    ("schedules", "exdates"): st.sampled_from(["2021-05-06", [5], ["thứ năm"], [{"a": 1}]]),
    ("schedules", "priority"): enum_text,
    ("schedules", "validity"): bad_durations,
    ("schedules", "misfire_grace"): bad_durations,
    ("schedules", "enabled"): st.sampled_from(["có", 2, "bật"]),
    ("schedules", "resend_unknown"): st.sampled_from(["không", 2, 0.5]),
    ("schedules", "options"): st.sampled_from([{"khong_dau": True}, {"x": 1}, "x", [1]]),
}


@dataclass(frozen=True)
class BadPlan:
    """A plan file with one field broken; `field` is what the refusal must name."""

    field: str
    line: str  # the broken line, for the report
    text: str


def bad_plan(section: str, field: str, doc: dict[str, Any]) -> BadPlan:
    """`field` of `section` (its first table) broken: named as errors name it."""
    text = toml_document(doc)
    lines = [n for n in text.splitlines() if n.split(" = ")[0] == toml_key(field)]
    where = f"{section}[0]" if isinstance(doc[section], list) else section
    return BadPlan(f"{where}.{field}", (lines or ["(removed)"])[0][:200], text)


@st.composite
def bad_plans(draw: st.DrawFn) -> BadPlan:
    """The valid plan with one field given a bad value, or removed when it is required, or
    an unknown key added to a table."""
    doc = valid_plan()
    how = draw(st.sampled_from(["value", "value", "value", "unknown key", "required key"]))
    if how == "unknown key":
        section = draw(st.sampled_from(sorted(doc)))
        key = draw(st.sampled_from(["priorty", "pasword", "ngay_bat_dau", "Number", "rrule "]))
        table = doc[section][0] if isinstance(doc[section], list) else doc[section]
        if key in table:
            key += "_x"
        table[key] = draw(st.sampled_from(["high", 1, True]))
        return bad_plan(section, key.strip(), doc)
    if how == "required key":
        section, key = draw(
            st.sampled_from(
                [
                    ("plan", "number"),
                    ("content", "key"),
                    ("schedules", "content"),
                    ("schedules", "start"),
                    ("endpoints", "address"),
                    ("schedules", "channel"),
                ]
            )
        )
        table = doc[section][0] if isinstance(doc[section], list) else doc[section]
        del table[key]
        return bad_plan(section, key, doc)
    section, key = draw(st.sampled_from(sorted(PLAN_MUTATIONS)))
    value = draw(PLAN_MUTATIONS[(section, key)])
    table = doc[section][0] if isinstance(doc[section], list) else doc[section]
    table[key] = value
    broken = bad_plan(section, key, doc)
    if (section, key) == ("content", "key"):  # refused where a schedule names the old key
        return BadPlan("content", broken.line, broken.text)
    return broken


# Saved in an encoding coso reads (by its BOM): the same file as its UTF-8 twin.
READABLE_ENCODINGS = frozenset({"utf-16", "utf-8 bom"})


@dataclass(frozen=True)
class BadBytes:
    """A file's bytes broken as a whole (encoding, truncation, a raw NUL), or saved in an
    encoding that announces itself by its BOM (`readable`: it must read as its twin)."""

    what: str
    raw: bytes

    @property
    def readable(self) -> bool:
        return self.what in READABLE_ENCODINGS

    def __repr__(self) -> str:
        return f"BadBytes({self.what!r}, {self.raw[:60]!r}…)"


def broken_encodings(text: str) -> st.SearchStrategy[BadBytes]:
    """`text` saved the ways careless tools save it."""
    utf8 = text.encode()
    return st.sampled_from(
        [
            BadBytes("utf-16", text.encode("utf-16")),
            BadBytes("utf-8 bom", codecs.BOM_UTF8 + utf8),
            BadBytes("cp1258", unicodedata.normalize("NFD", text).encode("cp1258", "replace")),
            BadBytes("invalid utf-8", utf8[:40] + b"\xff\xfe\xc3\x28" + utf8[40:]),
            BadBytes("nul byte", utf8[:30] + b"\x00" + utf8[30:]),
            BadBytes("truncated", utf8[: len(utf8) // 2]),
            BadBytes("empty", b""),
        ]
    )


# --- endpoint and recipient files ---------------------------------------------------------

bad_phones = st.one_of(
    st.sampled_from(
        [
            "0912-abc-678",
            "0912 HOA 678",
            "0912 345",
            "113",
            "+84 912 345 678 999",
            f"0912{NUL}345678",
            f"{RTL}0912345678",
            "0" * 200,
            '=HYPERLINK("http://x")',
            "",
        ]
    ),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12),
)
big_field = st.sampled_from([200_000, 1_000_000]).map(lambda n: "x" * n)


@dataclass(frozen=True)
class BadRow:
    """One data row with a hostile cell, and the column it is in."""

    column: str
    cells: dict[str, str]


@st.composite
def bad_endpoint_rows(draw: st.DrawFn) -> BadRow:
    """A row of an endpoints CSV (channel,address,name,unit) with one bad cell."""
    row = {"channel": "web", "address": "bulletin:06019", "name": "Xã Tân Đoàn", "unit": "06019"}
    column = draw(st.sampled_from(["channel", "address", "address", "unit", "name"]))
    row[column] = draw(
        {
            "channel": st.sampled_from(["bồ câu", "", "WEB", f"web{NUL}"]),
            "address": st.sampled_from(
                ["", "bulletin:", f"bulletin:06019{NUL}", f"{RTL}bulletin:06019", "x" * 5000]
            ),
            "unit": st.sampled_from(["99999", f"06019{NUL}", "x" * 5000]),
            "name": st.one_of(big_field, st.sampled_from([f"Xã{NUL}Tân", f"{RTL}Xã"])),
        }[column]
    )
    return BadRow(column, row)


@st.composite
def bad_recipient_rows(draw: st.DrawFn) -> BadRow:
    """A row of a recipients file (name,phone,unit,groups) with one bad cell."""
    row = {"name": "Nguyễn Văn An", "phone": "0987000001", "unit": "06040", "groups": "to-1"}
    column = draw(st.sampled_from(["phone", "phone", "phone", "unit", "name"]))
    row[column] = draw(
        {
            "phone": bad_phones,
            "unit": st.sampled_from(["99999", f"06040{NUL}", "x" * 5000]),
            "name": st.one_of(big_field, st.sampled_from([f"An{NUL}", f"{NUL}"])),
        }[column]
    )
    return BadRow(column, row)


# --- settings files -----------------------------------------------------------------------

CONFIG_MUTATIONS: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("database", "url"): st.sampled_from(["mysql://root@localhost/coso", "", "sqlite:", 5]),
    ("server", "port"): st.one_of(st.sampled_from([-1, 0, 65536, 2**64, "tám"]), hostile_floats),
    ("server", "public_url"): st.sampled_from(["coso.example.vn", "http://", "ftp://x", "", 5]),
    ("timer", "default_zone"): st.sampled_from(["Asia/Saigon_", "", "UTC+7", 7]),
    ("timer", "horizon"): bad_durations,
    ("dispatcher", "idle_poll"): st.sampled_from([-1, "nhanh", math.inf, math.nan]),
    ("channels", "loudspeaker", "topic_prefix"): st.sampled_from(
        ["", "coso/#", "coso/+/v1", "/", f"coso{NUL}"]
    ),
    ("channels", "loudspeaker", "client_id"): st.sampled_from(["", f"coso{NUL}"]),
    ("channels", "loudspeaker", "heartbeat"): st.sampled_from(["0s", "-5s", "x"]),
    ("channels", "loudspeaker", "ack_timeout"): bad_durations,
    ("channels", "sms", "rate_per_second"): st.sampled_from([-1, 0, "x", math.inf]),
    ("channels", "sms", "quiet_start"): st.sampled_from(["25:00", "22h", "", 22]),
}
UNKNOWN_KEYS: list[tuple[str, ...]] = [
    ("database", "pasword"),
    ("server", "prot"),
    ("timer", "horizn"),
    ("channels", "loudspeaker", "broker", "pasword"),
    ("channels", "sms", "auth_tokne"),
    ("channels", "web", "rate_per_secnd"),
    ("serverr", "port"),
]


@dataclass(frozen=True)
class BadConfig:
    """A settings file with one bad value or unknown key; `field` is its dotted name."""

    field: str
    path: tuple[str, ...]
    value: Any

    def text(self, base: dict[str, Any]) -> str:
        """The settings file: `base` (e.g. the test database's URL) with this one change."""
        return config_text(nest(self.path, self.value, json.loads(json.dumps(base))))


def nest(path: tuple[str, ...], value: Any, doc: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = {} if doc is None else doc
    node = doc
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return doc


def config_text(doc: dict[str, Any], prefix: str = "") -> str:
    """Nested tables as `[a.b]` headers."""
    scalars = {k: v for k, v in doc.items() if not isinstance(v, dict) or not v}
    tables = {k: v for k, v in doc.items() if k not in scalars}
    lines = [f"[{prefix}]"] if prefix and scalars else []
    lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in scalars.items()]
    for name, table in tables.items():
        lines.append(config_text(table, f"{prefix}.{name}" if prefix else name))
    return "\n".join(lines) + "\n"


@st.composite
def bad_configs(draw: st.DrawFn) -> BadConfig:
    if draw(st.booleans()):
        path = draw(st.sampled_from(UNKNOWN_KEYS))
        return BadConfig(".".join(path), path, "x")
    path = draw(st.sampled_from(sorted(CONFIG_MUTATIONS)))
    value = draw(CONFIG_MUTATIONS[path])
    return BadConfig(".".join(path), path, value)


# --- HTTP requests ------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request to coso's web app: `signed` ones carry the gateway's valid signature."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    signed: bool = False


ROUTES = ["/", "/healthz", "/bulletin", "/bulletin.atom", "/plans/", "/media/", "/sms/status",
          "/sms/inbound", "/api/docs", "/openapi.json"]  # fmt: skip
path_tails = st.one_of(
    st.sampled_from(
        [
            "",
            "../../etc/passwd",
            "%2e%2e%2fcoso.db",
            "%00",
            "%ff%fe",
            "a" * 5000,
            "95%2FKH-UBND",
            "' OR 1=1 --",
            "<script>alert(1)</script>",
            "%E2%80%AE",
            "0" * 64 + ".mp3",
        ]
    ),
    st.text(alphabet="abc/%.-_0123456789", max_size=20),
)
queries = st.one_of(
    st.just(""),
    st.sampled_from(
        [
            "?unit=%00",
            "?unit=" + "9" * 5000,
            "?unit=%ff",
            "?unit=06040&unit=x",
            "?limit=-1",
            "?" + "a=1&" * 2000,
            "?unit=' OR 1=1 --",
        ]
    ),
)
form_values = st.one_of(odd_text, st.sampled_from(["x" * 100_000, "STOP", "delivered"]))
hostile_forms = st.dictionaries(
    st.sampled_from(
        [
            "MessageSid",
            "MessageStatus",
            "ErrorCode",
            "ErrorMessage",
            "To",
            "From",
            "Body",
            "SmsSid",
            "SmsStatus",
            "AccountSid",
        ]
    ),
    form_values,
    max_size=5,
)
bodies = st.one_of(
    st.just(b""),
    invalid_utf8,
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"x" * 2_000_000,
            b"MessageSid=%ff%fe&MessageStatus=delivered",
            b"=&=&=",
            b"MessageSid=" + b"%" * 1000,
        ]
    ),
)
headers = st.dictionaries(
    st.sampled_from(
        [
            "Content-Type",
            "X-Twilio-Signature",
            "Authorization",
            "X-Coso-Player",
            "Accept",
            "Content-Encoding",
        ]
    ),
    st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/json",
            "text/plain; charset=utf-16",
            "Bearer x",
            "Bearer " + "a" * 5000,
            "loa-a",
            "../x",
            "gzip",
            "",
            "abc=",
        ]
    ),
    max_size=3,
)


@st.composite
def http_requests(draw: st.DrawFn) -> Request:
    """Anything a stranger may send, or a form signed as the gateway would sign it (a
    gateway that misbehaves, or one whose token leaked) with hostile values."""
    if draw(st.integers(0, 3)) == 0:
        path = draw(st.sampled_from(["/sms/status", "/sms/inbound"]))
        form = draw(hostile_forms)
        return Request("POST", path, {}, json.dumps(form).encode(), signed=True)
    method = draw(st.sampled_from(["GET", "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"]))
    route = draw(st.sampled_from(ROUTES))
    tail = draw(path_tails) if route.endswith("/") else ""
    return Request(method, route + tail + draw(queries), draw(headers), draw(bodies))


# --- audio --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadAudio:
    """A file offered as audio that is none (or a broken one), under an audio name."""

    what: str
    name: str
    raw: bytes


def bad_audio(valid_wav: bytes) -> st.SearchStrategy[BadAudio]:
    suffixes = st.sampled_from(["wav", "mp3", "ogg", "flac", "m4a", "exe", "wav.txt"])
    half = len(valid_wav) // 2
    broken = st.sampled_from(
        [
            ("text", "Bản tin phát thanh\n".encode() * 50),
            ("empty", b""),
            ("header only", valid_wav[:44]),
            ("truncated", valid_wav[:half]),
            ("sizes lie", valid_wav[:4] + b"\xff\xff\xff\x7f" + valid_wav[8:40] + b"\xff" * 4),
            ("zip", b"PK\x03\x04" + b"\x00" * 200),
            ("nul", b"\x00" * 4096),
            ("html", b"<html><body>404</body></html>"),
        ]
    )
    return st.builds(
        lambda b, suffix, raw: BadAudio(b[0], f"ban-tin.{suffix}", raw or b[1]),
        broken,
        suffixes,
        st.one_of(st.just(b""), st.binary(min_size=1, max_size=512)),
    )


# --- command-line arguments ---------------------------------------------------------------

cli_values = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            NUL,
            f"95/KH{NUL}",
            RTL,
            "-1",
            "0",
            str(2**63),
            str(2**64),
            "1e9",
            "nan",
            "31/02/2021",
            "00/00/0000",
            "01/01/0001",
            "31/12/9999",
            "2021-13-01",
            "../../etc/passwd",
            "' OR 1=1 --",
            "%s%s%s",
            "{{ 7*7 }}",
            "x" * 10_000,
            "--help-me",
            "0912-abc-678",
        ]
    ),
    st.text(max_size=12).filter(lambda s: not s.startswith("-") and NUL not in s),
)
# Commands that read or write the database, with {} where the hostile value goes.
CLI_TEMPLATES = [
    ["plan", "show", "{}"],
    ["schedule", "preview", "95/KH-UBND", "--from", "{}"],
    ["schedule", "preview", "95/KH-UBND", "--days", "{}"],
    ["schedule", "preview", "{}"],
    ["schedule", "enable", "{}"],
    ["schedule", "disable", "{}"],
    ["log", "95/KH-UBND", "--since", "{}"],
    ["log", "95/KH-UBND", "--until", "{}"],
    ["log", "95/KH-UBND", "--unit", "{}"],
    ["log", "95/KH-UBND", "--limit", "{}"],
    ["log", "95/KH-UBND", "--state", "{}"],
    ["deliveries", "{}"],
    ["deliveries", "95/KH-UBND", "--limit", "{}"],
    ["units", "show", "{}"],
    ["content", "approve", "95/KH-UBND", "{}", "--by", "x"],
    ["content", "retire", "{}", "cchc"],
    ["endpoints", "list", "--unit", "{}"],
    ["endpoints", "import", "{}"],
    ["plan", "import", "{}"],
    ["sms", "optouts", "add", "{}"],
    ["sms", "optouts", "remove", "{}"],
    ["players", "token", "{}"],
    ["players", "credentials", "{}"],
    ["players", "revoke", "{}"],
]


@dataclass(frozen=True)
class BadArgs:
    args: list[str]
    value: str


@st.composite
def bad_cli_args(draw: st.DrawFn) -> BadArgs:
    template = draw(st.sampled_from(CLI_TEMPLATES))
    value = draw(cli_values)
    return BadArgs([value if a == "{}" else a for a in template], value)
