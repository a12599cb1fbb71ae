"""Text is read the Vietnamese way before any voice speaks it: numbers, dates, times, phone
numbers, percentages, units and abbreviations become words."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from content.speech_text import read_number, spoken_text

KNOWN = {
    0: "không",
    5: "năm",
    10: "mười",
    11: "mười một",
    14: "mười bốn",
    15: "mười lăm",
    20: "hai mươi",
    21: "hai mươi mốt",
    24: "hai mươi tư",
    25: "hai mươi lăm",
    101: "một trăm linh một",
    105: "một trăm linh năm",
    110: "một trăm mười",
    115: "một trăm mười lăm",
    1000: "một nghìn",
    1005: "một nghìn không trăm linh năm",
    2026: "hai nghìn không trăm hai mươi sáu",
    1_000_000: "một triệu",
    1_250_000: "một triệu hai trăm năm mươi nghìn",
    1_000_500: "một triệu năm trăm",
    3_000_000_000: "ba tỷ",
    1_005_000_000: "một tỷ không trăm linh năm triệu",
    10**12: "một nghìn tỷ",
}
WORD = re.compile(r"^[a-zàáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ]+$")


@pytest.mark.parametrize(("number", "words"), KNOWN.items())
def test_known_numbers_are_read_as_people_say_them(number: int, words: str) -> None:
    assert read_number(number) == words


@given(st.integers(min_value=0, max_value=10**12))
def test_every_number_up_to_a_trillion_is_read_in_vietnamese_words(number: int) -> None:
    words = read_number(number).split()
    assert words and all(WORD.match(w) for w in words), words
    # "mốt" only follows a tens word; "linh" only stands for an empty ten.
    for before, word in itertools.pairwise(words):
        if word == "mốt":
            assert before == "mươi"
        if word == "linh":
            assert before == "trăm"


@given(st.integers(min_value=0, max_value=10**12))
def test_a_number_in_text_is_read_the_same_as_alone(number: int) -> None:
    assert spoken_text(f"có {number} hộ") == f"có {read_number(number)} hộ"


def test_an_announcement_with_a_date_a_time_and_abbreviations_is_read_in_words() -> None:
    text = "UBND xã thông báo: ngày 14/10/2026 lúc 7h30 họp về CCHC tại TP. Lạng Sơn."
    assert spoken_text(text) == (
        "ủy ban nhân dân xã thông báo: ngày mười bốn tháng mười năm hai nghìn không trăm"
        " hai mươi sáu lúc bảy giờ ba mươi phút họp về cải cách hành chính tại thành phố"
        " Lạng Sơn."
    )


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("14/10/2026", "ngày mười bốn tháng mười năm hai nghìn không trăm hai mươi sáu"),
        ("ngày 4-4-2026", "ngày mồng bốn tháng tư năm hai nghìn không trăm hai mươi sáu"),
        ("ngày 21/4", "ngày hai mươi mốt tháng tư"),
        ("tháng 10/2026", "tháng mười năm hai nghìn không trăm hai mươi sáu"),
        ("17:00", "mười bảy giờ"),
        ("05:30", "năm giờ ba mươi phút"),
        ("7h", "bảy giờ"),
        ("05:00–06:30", "năm giờ đến sáu giờ ba mươi phút"),
        ("15%", "mười lăm phần trăm"),
        ("2,5%", "hai phẩy năm phần trăm"),
        ("0,05", "không phẩy không năm"),
        ("1.250.000 đồng", "một triệu hai trăm năm mươi nghìn đồng"),
        ("giật 150 km/h", "giật một trăm năm mươi ki lô mét một giờ"),
        ("mưa 200-300 mm", "mưa hai trăm đến ba trăm mi li mét"),
        ("-3°C", "âm ba độ C"),
        ("lần thứ 1, thứ 4", "lần thứ nhất, thứ tư"),
        ("T2-T7", "thứ hai đến thứ bảy"),
        ("gọi 0912 345 678", "gọi không chín một hai ba bốn năm sáu bảy tám"),
        ("+84912345678", "cộng tám bốn chín một hai ba bốn năm sáu bảy tám"),
        ("95/KH-UBND", "chín mươi lăm kế hoạch ủy ban nhân dân"),
        ("TP.HCM", "thành phố Hồ Chí Minh"),
        ("Q.1, P. Bến Nghé", "quận một, phường Bến Nghé"),
        ("3/4 số hộ", "ba phần tư số hộ"),
        ("HĐND và UBND", "hội đồng nhân dân và ủy ban nhân dân"),
    ],
)
def test_reading_rules(text: str, read: str) -> None:
    assert spoken_text(text) == read


def test_words_that_merely_contain_an_abbreviation_are_left_alone() -> None:
    assert spoken_text("KHÁNH thành, UBNDX") == "KHÁNH thành, UBNDX"


def test_config_adds_abbreviations_and_may_replace_built_in_ones() -> None:
    extra = {"BQL": "ban quản lý", "CN": "công nghệ"}
    assert spoken_text("BQL chợ, CN số", extra) == "ban quản lý chợ, công nghệ số"
    assert spoken_text("mở cửa CN") == "mở cửa chủ nhật"


def test_text_without_anything_to_read_out_is_kept() -> None:
    assert spoken_text("Bà con chú ý.\nXin cảm ơn.") == "Bà con chú ý.\nXin cảm ơn."


def test_hotlines_are_read_digit_by_digit_and_plain_numbers_are_not() -> None:
    assert spoken_text("gọi 1900 1234") == "gọi một chín không không một hai ba bốn"
    assert spoken_text("có 19001234 hộ") == f"có {read_number(19001234)} hộ"


@given(st.text(max_size=200))
def test_any_text_is_read_without_error_and_leaves_no_digit_to_the_voice(text: str) -> None:
    assert not re.search(r"\d", spoken_text(text))


@given(
    st.lists(
        st.sampled_from(
            [
                "UBND",
                "14/10/2026",
                "7h30",
                "15%",
                " ",
                ", ",
                "xã",
                "-",
                "/",
                "0912345678",
                "2,5",
                "TP.",
                "thứ 4",
                "1.000",
                "T2",
                "05:00",
            ]
        ),
        max_size=30,
    )
)
def test_announcements_made_of_the_usual_parts_leave_no_digit_to_the_voice(
    parts: list[str],
) -> None:
    assert not re.search(r"\d", spoken_text("".join(parts)))
