"""Speech for text-only content: spoken offline by espeak-ng's Vietnamese voice after the
text is read the Vietnamese way, prepared like uploaded audio, labelled as synthesised, and
played by loudspeakers as any clip."""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import stat
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydub import AudioSegment
from sqlalchemy import Engine
from typer.testing import CliRunner

from content.audio import loudness
from content.speech import SYNTHESISED, speak_content, speech_for
from coso.config import Settings, SpeechSettings
from coso.errors import InputError
from dispatcher.cli.app import app
from dispatcher.queries import find_plan
from tests.helpers import wait_for
from tests.loudspeakers import (
    CountingSink,
    log_count,
    players,
    running_coso,
    speaker_settings,
)
from tests.piper_voice import tiny_voice
from tests.plans import write_plan

ESPEAK = shutil.which("espeak-ng")


@pytest.fixture
def espeak() -> str:
    """The synthesiser these tests speak with; without it they fail saying what to install."""
    if ESPEAK is None:
        pytest.fail(
            "espeak-ng is not installed: `make espeak-ng` as root, or apt-get install espeak-ng"
        )
    return ESPEAK


needs_espeak = pytest.mark.usefixtures("espeak")
WARNING = (
    "UBND xã Tân Lập thông báo: bão số 5 sẽ đổ bộ vào đêm 14/10/2026, gió giật 150 km/h."
    " Bà con khẩn trương chằng chống nhà cửa, gọi 0912 345 678 khi cần hỗ trợ."
)


def speech_settings(tmp_path: Path, **speech: object) -> Settings:
    settings = Settings()
    return settings.model_copy(
        update={
            "media": settings.media.model_copy(update={"dir": str(tmp_path / "media")}),
            "speech": SpeechSettings(**speech),  # type: ignore[arg-type]
        }
    )


def decoded(data: bytes) -> AudioSegment:
    return AudioSegment.from_file(io.BytesIO(data), format="mp3", codec="mp3")


@needs_espeak
def test_speech_decodes_lasts_as_long_as_the_text_needs_and_is_as_loud_as_uploads(
    tmp_path: Path,
) -> None:
    settings = speech_settings(tmp_path)
    short = speech_for(None, settings, "Bà con chú ý.", chime=False)  # type: ignore[arg-type]
    long = speech_for(None, settings, WARNING, chime=False)  # type: ignore[arg-type]
    target = settings.media.target_lufs
    for spoken in (short, long):
        stored = (tmp_path / "media" / spoken.file_name).read_bytes()
        assert hashlib.sha256(stored).hexdigest() == spoken.prepared.sha256
        audio = decoded(stored)
        assert audio.frame_rate == settings.media.sample_rate
        assert abs(len(audio) / 1000 - spoken.prepared.duration_seconds) < 0.1
        # the same tolerance as uploaded audio (tests/test_media.py)
        assert abs(loudness(audio) - target) <= 1.0, spoken.prepared.loudness_lufs
        assert spoken.voice == "espeak-ng vi"
        assert spoken.source_name == f"{SYNTHESISED} (espeak-ng vi)"
    # about a dozen syllables against well over a hundred
    assert short.prepared.duration_seconds < 4
    assert long.prepared.duration_seconds > 5 * short.prepared.duration_seconds


@needs_espeak
def test_a_chime_comes_before_the_speech_and_the_log_says_it_is_synthesised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="content.speech")
    settings = speech_settings(tmp_path)
    plain = speech_for(None, settings, "Bà con chú ý.", chime=False)  # type: ignore[arg-type]
    chimed = speech_for(None, settings, "Bà con chú ý.", chime=True)  # type: ignore[arg-type]
    assert chimed.prepared.sha256 != plain.prepared.sha256
    longer = chimed.prepared.duration_seconds - plain.prepared.duration_seconds
    assert 1.0 <= longer <= 2.0
    assert abs(chimed.prepared.loudness_lufs - settings.media.target_lufs) <= 1.0
    opening = decoded((tmp_path / "media" / chimed.file_name).read_bytes())[:350]
    assert opening.dBFS > -30  # the chime sounds from the start; espeak-ng opens with silence
    said = [r.getMessage() for r in caplog.records if r.name == "content.speech"]
    assert len(said) == 2
    assert all(m.startswith(f"{SYNTHESISED} (espeak-ng vi)") for m in said)
    assert chimed.prepared.sha256[:12] in said[1]


@needs_espeak
def test_the_synthesiser_is_handed_dates_numbers_and_abbreviations_in_words(
    tmp_path: Path,
) -> None:
    """A stand-in for espeak-ng keeps what it is given, then runs the real one."""
    heard = tmp_path / "heard.txt"
    wrapper = tmp_path / "espeak-ng"
    wrapper.write_text(f'#!/bin/sh\ntee "{heard}" | exec "{ESPEAK}" "$@"\n', encoding="utf-8")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    settings = speech_settings(tmp_path, espeak=str(wrapper))
    spoken = speech_for(None, settings, WARNING, chime=True)  # type: ignore[arg-type]
    text = heard.read_text(encoding="utf-8")
    assert text == spoken.reading
    assert "ủy ban nhân dân xã Tân Lập" in text
    assert "ngày mười bốn tháng mười năm hai nghìn không trăm hai mươi sáu" in text
    assert "một trăm năm mươi ki lô mét một giờ" in text
    assert "không chín một hai ba bốn năm sáu bảy tám" in text
    assert "UBND" not in text and "14/10/2026" not in text
    assert not any(c.isdigit() for c in text)


def test_without_espeak_ng_speech_is_refused_saying_what_to_install(tmp_path: Path) -> None:
    settings = speech_settings(tmp_path, espeak=str(tmp_path / "no-such" / "espeak-ng"))
    with pytest.raises(InputError, match="apt-get install espeak-ng") as refused:
        speech_for(None, settings, "Bà con chú ý.", chime=False)  # type: ignore[arg-type]
    assert refused.value.field == "speech.espeak"
    assert not (tmp_path / "media").exists() or not any((tmp_path / "media").iterdir())


@needs_espeak
def test_an_unknown_voice_is_refused_naming_the_setting(tmp_path: Path) -> None:
    settings = speech_settings(tmp_path, voice="zz-nope")
    with pytest.raises(InputError, match=r"speech.voice = 'zz-nope': .*--voices=vi"):
        speech_for(None, settings, "Bà con chú ý.", chime=False)  # type: ignore[arg-type]


def test_a_piper_voice_that_cannot_be_used_is_refused_clearly(tmp_path: Path) -> None:
    model = tmp_path / "vi_VN-test.onnx"
    settings = speech_settings(tmp_path, piper_model=str(model))
    with pytest.raises(InputError, match=r"speech.piper_model = .*không có tệp giọng đọc"):
        speech_for(None, settings, "Bà con chú ý.", chime=False)  # type: ignore[arg-type]
    model.write_bytes(b"not a model")
    with pytest.raises(InputError, match=r"thiếu tệp cấu hình .*vi_VN-test.onnx.json"):
        speech_for(None, settings, "Bà con chú ý.", chime=False)  # type: ignore[arg-type]
    Path(f"{model}.json").write_text("{}", encoding="utf-8")
    with pytest.raises(InputError, match=r"speech.piper_model = .*piper không đọc được"):
        speech_for(None, settings, "Bà con chú ý.", chime=False)  # type: ignore[arg-type]


def test_without_the_piper_runtime_a_piper_voice_is_refused_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tiny_voice(tmp_path / "vi_VN-tiny.onnx")
    monkeypatch.setitem(sys.modules, "piper", None)  # as if piper-tts were not installed
    settings = speech_settings(tmp_path, piper_model=str(model))
    with pytest.raises(InputError, match=r"speech.piper_model = .*pip install piper-tts"):
        speech_for(None, settings, "Bà con chú ý.", chime=False)  # type: ignore[arg-type]


def test_a_local_piper_voice_speaks_the_reading_and_is_prepared_like_uploads(
    tmp_path: Path,
) -> None:
    """A tiny voice made here (a tone per phoneme): what matters is the path through piper,
    not how it sounds."""
    model = tiny_voice(tmp_path / "vi_VN-tiny.onnx")
    settings = speech_settings(tmp_path, piper_model=str(model), espeak="/no/espeak-ng")
    short = speech_for(None, settings, "UBND xã.", chime=False)  # type: ignore[arg-type]
    long = speech_for(None, settings, WARNING, chime=False)  # type: ignore[arg-type]
    for spoken in (short, long):
        assert spoken.voice == "piper vi_VN-tiny"
        audio = decoded((tmp_path / "media" / spoken.file_name).read_bytes())
        assert abs(loudness(audio) - settings.media.target_lufs) <= 1.0
    assert short.reading == "ủy ban nhân dân xã."
    assert long.prepared.duration_seconds > 5 * short.prepared.duration_seconds


def test_text_with_nothing_to_say_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="text = '…': không có chữ nào để đọc"):
        speech_for(None, speech_settings(tmp_path), "…", chime=False)  # type: ignore[arg-type]


# ---------------------------------------------------------------- content items

PLAN = """\
[plan]
number = "KHẨN/01"
title = "Phòng chống thiên tai"
period_start = 2021-01-01
period_end = 2099-12-31

[[content]]
key = "bao-so-5"
kind = "text"
title = "Cảnh báo bão số 5"
body = "{body}"
state = "approved"
{endpoints}
[[groups]]
name = "loa-xa"
channel = "loudspeaker"
endpoints = {ids}

[[schedules]]
name = "Phát cảnh báo"
content = "bao-so-5"
channel = "loudspeaker"
targets = {{ groups = ["loa-xa"] }}
start = {start}
enabled = false
"""


def plan_with_text(ids: list[str], body: str = WARNING) -> str:
    endpoints = "".join(
        f'\n[[endpoints]]\nchannel = "loudspeaker"\naddress = "{p}"\nunit = "06040"\n' for p in ids
    )
    start = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT06:30:00")
    return PLAN.format(body=body, endpoints=endpoints, ids=str(ids).replace("'", '"'), start=start)


@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COSO_DATABASE__URL", db_url)
    monkeypatch.setenv("COSO_MEDIA__DIR", str(tmp_path / "media"))
    monkeypatch.delenv("COSO_CONFIG", raising=False)
    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        result = runner.invoke(app, list(args))
        result.text = result.output.replace("\n", " ")  # type: ignore[attr-defined]
        return result

    return invoke


@needs_espeak
def test_a_text_item_is_spoken_from_the_command_line_and_loudspeakers_then_take_it(
    cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    assert (
        cli("plan", "import", str(write_plan(tmp_path, plan_with_text(["loa-1"])))).exit_code == 0
    )
    refused = cli("schedule", "enable", "1")
    assert refused.exit_code == 2
    assert "coso content speak KHẨN/01 bao-so-5" in refused.text
    spoken = cli("content", "speak", "KHẨN/01", "bao-so-5", "--by", "Cán bộ VH")
    assert spoken.exit_code == 0, spoken.output
    assert f"bao-so-5: {SYNTHESISED} (espeak-ng vi)" in spoken.text
    assert "phiên bản 2" in spoken.text
    approved = cli("content", "approve", "KHẨN/01", "bao-so-5", "--version", "2", "--by", "PCT")
    assert approved.exit_code == 0, approved.output
    enabled = cli("schedule", "enable", "1")
    assert enabled.exit_code == 0, enabled.output


def test_a_templated_body_is_not_spoken(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    from schedules.importer import import_plan_file

    body = "Kính gửi {{ unit.name }}: họp lúc 7h30."
    path = write_plan(tmp_path, plan_with_text(["loa-1"], body))
    import_plan_file(engine, settings, path, datetime.now(UTC))
    plan = find_plan(engine, "KHẨN/01")
    with pytest.raises(InputError, match=r"body = .*biến mẫu \(unit\)"):
        speak_content(engine, settings, plan.id, "bao-so-5", "x", datetime.now(UTC))


class KeepingSink(CountingSink):
    """A player's sink that keeps the bytes of each clip it is told to play."""

    def start(self, path: Path, duration: float, volume: int) -> None:
        self.kept = [*getattr(self, "kept", []), (path.read_bytes(), duration)]
        super().start(path, duration, volume)


@needs_espeak
def test_a_text_only_emergency_is_spoken_on_the_players_after_a_chime(
    engine: Engine, settings: Settings, broker_url: str, tmp_path: Path
) -> None:
    """`coso emergency send --text` with no audio: the speech (chime first) is what every
    player fetches, and what it fetched decodes, is as long as the text needs and is
    normalised; the item's audio is labelled as synthesised."""
    from sqlalchemy import select

    from content.models import MediaAsset
    from dispatcher.emergency import EmergencyRequest, declare
    from schedules.importer import import_plan_file

    settings = speaker_settings(settings, broker_url, tmp_path)
    ids = ["loa-1", "loa-2", "loa-3"]
    import_plan_file(engine, settings, write_plan(tmp_path, plan_with_text(ids)), datetime.now(UTC))
    group = players(settings, ids, tmp_path, sink=KeepingSink).start()
    try:
        with running_coso(engine, settings):
            request = EmergencyRequest(text=WARNING, units=["06040"], channels=["loudspeaker"])
            declare(engine, settings, request, datetime.now(UTC), "Chủ tịch UBND xã")
            wait_for(lambda: log_count(engine, "played") >= 3, 60, "the warning played on all")
    finally:
        group.stop()
    with engine.connect() as conn:
        asset = conn.execute(select(MediaAsset.__table__)).one()
    assert asset.voice and asset.source_name.startswith(SYNTHESISED)
    for pid in ids:
        kept = group.player(pid).sink.kept  # type: ignore[attr-defined]
        assert len(kept) == 1, pid
        data, duration = kept[0]
        assert hashlib.sha256(data).hexdigest() == asset.sha256
        audio = decoded(data)
        seconds = len(audio) / 1000
        assert abs(duration - seconds) < 0.2
        # the chime, then about two hundred syllables: far more than a few seconds
        assert seconds > 15, seconds
        assert abs(loudness(audio) - settings.media.target_lufs) <= 1.0
        assert audio[:350].dBFS > -30  # the chime first


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ('abbreviations = { "B Q" = "ban quản lý" }', "speech.abbreviations"),
        ('abbreviations = { BQL = " " }', "speech.abbreviations"),
        ('voice = "vi; rm -rf /"', "speech.voice"),
        ("rate = 20", "speech.rate"),
    ],
)
def test_bad_speech_settings_are_refused_naming_them(
    tmp_path: Path, setting: str, named: str
) -> None:
    from coso.config import load_settings

    config = tmp_path / "coso.toml"
    config.write_text(f"[speech]\n{setting}\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"coso.toml: {named}"):
        load_settings(config)


@needs_espeak
def test_new_words_for_a_spoken_emergency_are_spoken_again(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """A text-only emergency on loudspeakers is speech: an update (a CAP Update, say) with
    new words is read again, not refused as a recording would be."""
    from sqlalchemy import select

    from content.models import MediaAsset
    from dispatcher.emergency import EmergencyRequest, declare, update
    from schedules.importer import import_plan_file

    settings = speech_settings(tmp_path).model_copy(
        update={"database": settings.database, "channels": settings.channels}
    )
    settings.channels["loudspeaker"] = {"broker": {"url": "mqtt://127.0.0.1:1"}}
    now = datetime.now(UTC)
    import_plan_file(engine, settings, write_plan(tmp_path, plan_with_text(["loa-1"])), now)
    request = EmergencyRequest(text="Bão số 5 đổ bộ đêm nay.", units=["06040"])
    ref = declare(engine, settings, request, now, "Chủ tịch UBND xã")
    longer = "Bão số 5 đổ bộ đêm nay. " + WARNING
    update(engine, settings, ref, text=longer, now=now, actor="Chủ tịch UBND xã")
    with engine.connect() as conn:
        assets = conn.execute(
            select(MediaAsset.__table__).order_by(MediaAsset.__table__.c.id)
        ).all()
    assert len(assets) == 2 and all(a.voice for a in assets)
    assert assets[1].duration_seconds > assets[0].duration_seconds + 5


def spoken_emergency_settings(settings: Settings, tmp_path: Path, **speech: object) -> Settings:
    """The test settings (database, console) with speech into tmp_path and a loudspeaker
    channel set up (its broker is not needed to declare)."""
    chosen = speech_settings(tmp_path, **speech).model_copy(
        update={
            "database": settings.database,
            "console": settings.console,
            "channels": {**settings.channels},
        }
    )
    chosen.channels["loudspeaker"] = {"broker": {"url": "mqtt://127.0.0.1:1"}}
    return chosen


@needs_espeak
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_spoken_emergency_is_labelled_synthesised_on_its_page_and_in_its_logs(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its console page, `coso emergency show` and its loudspeakers' log entry say the
    warning is read by a synthesised voice, and which; the service log says so too. A
    recording is not."""
    from channels.endpoints import add_endpoints
    from dispatcher.emergency import EmergencyRequest, declare, emergency_log
    from dispatcher.web.app import create_app
    from tests.conftest import ServerThread
    from tests.console import make_user, signed_in
    from tests.loudspeakers import clip

    caplog.set_level(logging.INFO, logger="dispatcher.emergency")
    settings = spoken_emergency_settings(settings, tmp_path)
    now = datetime.now(UTC)
    add_endpoints(
        engine,
        [
            {"channel": "loudspeaker", "address": "loa-1", "unit_code": "06040"},
            {"channel": "web", "address": "bulletin:06040", "unit_code": "06040"},
        ],
        now,
    )
    make_user(engine, "chu-tich", ["administrator"], [])
    spoken = declare(
        engine, settings, EmergencyRequest(text=WARNING, units=["06040"]), now, "chu-tich"
    )
    recorded = declare(
        engine,
        settings,
        EmergencyRequest(text="Bão số 5", units=["06040"], audio=clip(tmp_path, 3, 660)),
        now,
        "chu-tich",
    )
    with (
        ServerThread(create_app(engine, settings)) as server,
        signed_in(server.url, "chu-tich") as console,
    ):
        page = console.get(f"/emergencies/{spoken}")
        other = console.get(f"/emergencies/{recorded}")
    assert page.status_code == 200 and other.status_code == 200
    assert (
        f'Loa phát: <strong class="synthesised">{SYNTHESISED}</strong> (espeak-ng vi,' in page.text
    )
    assert SYNTHESISED not in other.text and "Loa phát: tệp " in other.text
    monkeypatch.setenv("COSO_DATABASE__URL", settings.database.url)
    monkeypatch.setenv("COLUMNS", "200")
    shown = CliRunner().invoke(app, ["emergency", "show", spoken])
    assert shown.exit_code == 0, shown.output
    assert f"loa phát: {SYNTHESISED} (espeak-ng vi), " in shown.output

    def declared(ref: str, channel: str) -> str:
        (entry,) = [
            e
            for e in emergency_log(engine, ref)
            if e.event == "emergency_declared" and e.channel == channel
        ]
        return str(entry.detail)

    assert f"loa phát {SYNTHESISED} (espeak-ng vi), " in declared(spoken, "loudspeaker")
    assert SYNTHESISED not in declared(spoken, "web")  # the bulletin shows the words
    assert SYNTHESISED not in declared(recorded, "loudspeaker")
    said = [r.getMessage() for r in caplog.records if r.name.startswith("dispatcher.emergency")]
    (line,) = [m for m in said if SYNTHESISED in m]  # the speech's, not the recording's
    assert line.startswith(f"{spoken} bản 1: {SYNTHESISED} (espeak-ng vi), ")


@needs_espeak
def test_a_drill_is_spoken_as_a_drill(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    """The words handed to the synthesiser for a drill carry its label, and say it again
    at the end."""
    from channels.endpoints import add_endpoints, mark_test
    from dispatcher.emergency import EmergencyRequest, declare

    heard = tmp_path / "heard.txt"
    wrapper = tmp_path / "espeak-ng"
    wrapper.write_text(f'#!/bin/sh\ntee "{heard}" | exec "{ESPEAK}" "$@"\n', encoding="utf-8")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    settings = spoken_emergency_settings(settings, tmp_path, espeak=str(wrapper))
    now = datetime.now(UTC)
    add_endpoints(
        engine, [{"channel": "loudspeaker", "address": "loa-thu", "unit_code": "06040"}], now
    )
    mark_test(engine, "loudspeaker", ["loa-thu"], True)
    request = EmergencyRequest(
        text="UBND xã thử còi báo động ngày 14/10/2026.", units=["06040"], drill=True
    )
    declare(engine, settings, request, now, "chu-tich")
    text = heard.read_text(encoding="utf-8")
    assert text.startswith("[DIỄN TẬP] ủy ban nhân dân xã thử còi báo động ngày mười bốn")
    assert text.rstrip().endswith("Đây là tin diễn tập.")
