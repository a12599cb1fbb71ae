"""SMS text: NFC normalisation, "không dấu" transliteration, and how a text is encoded and
split (GSM 03.38: GSM-7 160 / 153 per part, UCS-2 70 / 67 per part)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from unidecode import unidecode

GSM7 = "GSM-7"
UCS2 = "UCS-2"

# The GSM 03.38 default alphabet; each of these is one septet.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: an escape septet plus one, so two septets each.
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")

SINGLE = {GSM7: 160, UCS2: 70}
PART = {GSM7: 153, UCS2: 67}


@dataclass(frozen=True)
class SmsLength:
    encoding: str  # GSM-7 or UCS-2
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int
    per_segment: int  # capacity of one segment for this text

    @property
    def characters(self) -> int:
        return self.units


def normalise(text: str) -> str:
    """NFC, so "ế" typed as e + two combining marks counts (and is sent) as one character."""
    return unicodedata.normalize("NFC", text)


def khong_dau(text: str) -> str:
    """Vietnamese without diacritics ("Thông báo" → "Thong bao", đ → d), which fits GSM-7."""
    return unidecode(normalise(text))


def measure(text: str) -> SmsLength:
    """Encoding and segment count of `text` as a gateway sends it (after NFC)."""
    text = normalise(text)
    if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text):
        encoding = GSM7
        widths = [2 if c in GSM7_EXTENDED else 1 for c in text]  # escape + septet
    else:
        encoding = UCS2
        widths = [2 if ord(c) > 0xFFFF else 1 for c in text]  # astral: a surrogate pair
    units = sum(widths)
    if units <= SINGLE[encoding]:
        return SmsLength(encoding, units, 1 if units else 0, SINGLE[encoding])
    # Parts never split an escape sequence or a surrogate pair: a character that does not
    # fit whole starts the next part.
    segments, used = 1, 0
    for width in widths:
        if used + width > PART[encoding]:
            segments, used = segments + 1, 0
        used += width
    return SmsLength(encoding, units, segments, PART[encoding])


def prepare(body: str, plain: bool = False) -> str:
    """The text as it is sent: trimmed, NFC, and without diacritics when `plain`."""
    text = normalise(body).strip()
    return khong_dau(text) if plain else text
