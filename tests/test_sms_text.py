"""SMS text: encoding and segments agree with an independent implementation (smsutil) on
Vietnamese with and without diacritics, NFD input, emoji and GSM escapes."""

from __future__ import annotations

import unicodedata

import pytest
import smsutil

from content.sms_text import GSM7, UCS2, khong_dau, measure, prepare

DAU = "Kính gửi bà con: từ ngày 01/6/2021 UBND xã tiếp nhận hồ sơ trực tuyến tại bộ phận một cửa."
KHONG = "Kinh gui ba con: tu ngay 01/6/2021 UBND xa tiep nhan ho so truc tuyen tai bo phan mot cua."

TABLE = [
    # (text, encoding, segments)
    ("", GSM7, 0),
    (KHONG, GSM7, 1),
    ("a" * 160, GSM7, 1),
    ("a" * 161, GSM7, 2),
    ("a" * 306, GSM7, 2),
    ("a" * 307, GSM7, 3),
    ("Giá: 10€ [ưu đãi]", UCS2, 1),  # ư makes it UCS-2 whatever the escapes
    ("Gia: 10€ {uu dai} ~ | ^ \\", GSM7, 1),
    ("€" * 80, GSM7, 1),  # 160 septets: 80 escapes
    ("€" * 81, GSM7, 2),
    ("a" * 152 + "€" + "b" * 10, GSM7, 2),  # the escape does not split across parts
    ("a" * 159 + "€", GSM7, 2),
    (DAU, UCS2, 2),  # 91 characters: over 70
    (DAU[:70], UCS2, 1),
    ("Đ" * 134, UCS2, 2),
    ("Đ" * 135, UCS2, 3),
    ("Bão số 3 🌀 khẩn", UCS2, 1),  # an emoji is two UTF-16 units
    ("🌀" * 35, UCS2, 1),  # 70 units
    ("🌀" * 36, UCS2, 2),
    ("a" * 66 + "🌀" + "b" * 5, UCS2, 2),  # the pair does not split across parts
    (unicodedata.normalize("NFD", DAU[:70]), UCS2, 1),  # NFD: 70 characters once composed
    (
        "Thông báo: họp dân lúc 19h30 tại nhà văn hóa thôn Nà Lình, xã Tràng Phái, huyện Văn Quan.",
        UCS2,
        2,
    ),
]


@pytest.mark.parametrize(("text", "encoding", "segments"), TABLE)
def test_segment_table(text: str, encoding: str, segments: int) -> None:
    length = measure(text)
    assert (length.encoding, length.segments) == (encoding, segments)
    composed = unicodedata.normalize("NFC", text)
    if composed:
        oracle = smsutil.split(composed)
        assert length.segments == len(oracle.parts)
        assert length.encoding == (GSM7 if oracle.encoding == "gsm0338" else UCS2)


def test_nfd_input_counts_as_the_composed_text() -> None:
    nfd = unicodedata.normalize("NFD", DAU[:70])
    assert len(nfd) > 70  # decomposed, it would take two UCS-2 segments
    assert measure(nfd) == measure(DAU[:70])
    assert prepare(nfd) == DAU[:70].strip()


def test_khong_dau_fits_gsm7_and_keeps_the_words() -> None:
    assert khong_dau(DAU) == KHONG
    assert khong_dau("Đường Điện Biên Phủ, ĐT 0912") == "Duong Dien Bien Phu, DT 0912"
    assert measure(khong_dau(DAU)).encoding == GSM7
    assert measure(khong_dau(unicodedata.normalize("NFD", DAU))).segments == 1
