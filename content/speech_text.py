"""Vietnamese text as it is read aloud, before a synthesiser sees it: abbreviations, dates,
times, phone numbers, percentages, units, ordinals and numbers become words, so that
"UBND … 14/10/2026" is spoken "ủy ban nhân dân … ngày mười bốn tháng mười năm hai nghìn
không trăm hai mươi sáu" by any voice. Pure: text in, text out."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping

DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
# Beyond this many digits a number is read digit by digit (an account or code number).
MAX_DIGITS = 15

# Abbreviations of administrative writing and of warnings, read in full. Keys are matched
# exactly (case matters) as whole words; a key ending in "." may run into the next word
# ("TP.HCM"). Config (speech.abbreviations) adds to this table and may replace entries.
ABBREVIATIONS: dict[str, str] = {
    "UBND": "ủy ban nhân dân",
    "HĐND": "hội đồng nhân dân",
    "UBMTTQ": "ủy ban mặt trận tổ quốc",
    "MTTQ": "mặt trận tổ quốc",
    "CCHC": "cải cách hành chính",
    "BCĐ": "ban chỉ đạo",
    "BTTTT": "bộ thông tin và truyền thông",
    "TTTT": "thông tin và truyền thông",
    "KH": "kế hoạch",
    "QĐ": "quyết định",
    "NĐ": "nghị định",
    "CP": "chính phủ",
    "TTg": "thủ tướng",
    "CV": "công văn",
    "TB": "thông báo",
    "CT": "chỉ thị",
    "TP.": "thành phố",
    "TP": "thành phố",
    "TX.": "thị xã",
    "TT.": "thị trấn",
    "Q.": "quận",
    "P.": "phường",
    "HCM": "Hồ Chí Minh",
    "VN": "Việt Nam",
    "PCCC": "phòng cháy chữa cháy",
    "PCTT": "phòng chống thiên tai",
    "TKCN": "tìm kiếm cứu nạn",
    "PCTT&TKCN": "phòng chống thiên tai và tìm kiếm cứu nạn",
    "CSGT": "cảnh sát giao thông",
    "ATGT": "an toàn giao thông",
    "ATTP": "an toàn thực phẩm",
    "BHYT": "bảo hiểm y tế",
    "BHXH": "bảo hiểm xã hội",
    "CCCD": "căn cước công dân",
    "CMND": "chứng minh nhân dân",
    "THCS": "trung học cơ sở",
    "THPT": "trung học phổ thông",
    "KT-XH": "kinh tế xã hội",
    "CN": "chủ nhật",
    "VNĐ": "đồng",
}

# Units written after a number.
UNITS = {
    "%": "phần trăm",
    "km/h": "ki lô mét một giờ",
    "km²": "ki lô mét vuông",
    "km2": "ki lô mét vuông",
    "km": "ki lô mét",
    "kg": "ki lô gam",
    "mm": "mi li mét",
    "cm": "xăng ti mét",
    "m²": "mét vuông",
    "m2": "mét vuông",
    "m³": "mét khối",
    "m3": "mét khối",
    "m": "mét",
    "ha": "héc ta",
    "°C": "độ C",
    "đ": "đồng",
    "VNĐ": "đồng",
}


# ---------------------------------------------------------------- numbers


def _hundreds(n: int, full: bool) -> list[str]:
    """0 < n < 1000 as words; `full` when a larger group comes before it, so that its
    hundreds are said ("không trăm") and a lone unit gets "linh" (1005: "… linh năm")."""
    h, t, u = n // 100, n // 10 % 10, n % 10
    words: list[str] = []
    if h or full:
        words += [DIGITS[h], "trăm"]
    if t == 0:
        if u:
            if h or full:
                words.append("linh")
            words.append(DIGITS[u])
    elif t == 1:
        words.append("mười")
        if u:
            words.append("lăm" if u == 5 else DIGITS[u])
    else:
        words += [DIGITS[t], "mươi"]
        if u:
            words.append({1: "mốt", 4: "tư", 5: "lăm"}.get(u, DIGITS[u]))
    return words


def _groups(n: int, full: bool) -> list[str]:
    if n >= 10**9:
        high, rest = divmod(n, 10**9)
        words = [*_groups(high, full), "tỷ"]
        return words + (_groups(rest, True) if rest else [])
    words: list[str] = []
    for value, scale in ((n // 10**6, "triệu"), (n // 1000 % 1000, "nghìn"), (n % 1000, "")):
        if value:
            words += _hundreds(value, full)
            if scale:
                words.append(scale)
            full = True
    return words


def read_number(n: int) -> str:
    """A whole number as Vietnamese words: 21 "hai mươi mốt", 105 "một trăm linh năm",
    2026 "hai nghìn không trăm hai mươi sáu", 10**12 "một nghìn tỷ"."""
    if n < 0:
        return "âm " + read_number(-n)
    if n == 0:
        return DIGITS[0]
    if len(str(n)) > MAX_DIGITS:
        return read_digits(str(n))
    return " ".join(_groups(n, False))


def read_digits(digits: str) -> str:
    """Digit by digit, as phone numbers are read: "0912" "không chín một hai"."""
    return " ".join("cộng" if d == "+" else DIGITS[int(d)] for d in digits if d in "+0123456789")


def read_decimal(whole: str, fraction: str) -> str:
    """3,25 "ba phẩy hai mươi lăm"; 0,05 "không phẩy không năm"."""
    zeros = len(fraction) - len(fraction.lstrip("0"))
    rest = fraction[zeros:]
    tail = [DIGITS[0]] * zeros
    if rest:
        tail.append(read_number(int(rest)) if len(rest) <= 3 else read_digits(rest))
    return " ".join([read_number(int(whole)), "phẩy", *tail])


def read_ordinal(n: int) -> str:
    """What follows "thứ": 1 "nhất", 4 "tư", else the number."""
    return {1: "nhất", 4: "tư"}.get(n) or read_number(n)


def read_day(day: int) -> str:
    """Days 1–10 of a month take "mồng": "mồng bốn"."""
    return ("mồng " if day <= 10 else "") + read_number(day)


def read_month(month: int) -> str:
    return "tư" if month == 4 else read_number(month)


def read_date(day: int, month: int, year: int | None) -> str:
    words = f"ngày {read_day(day)} tháng {read_month(month)}"
    return words + (f" năm {read_number(year)}" if year is not None else "")


def read_time(hour: int, minute: int) -> str:
    return f"{read_number(hour)} giờ" + (f" {read_number(minute)} phút" if minute else "")


# ---------------------------------------------------------------- the text

_NOT_WORD = r"(?<![\w])"
_END = r"(?![\w])"
_DATE = re.compile(
    r"(?:(?P<ngay>[Nn]gày)\s+)?" + _NOT_WORD + r"(?P<d>\d{1,2})(?P<sep>[/.\-])(?P<m>\d{1,2})"
    r"(?:(?P=sep)(?P<y>\d{4}))?" + _END
)
_MONTH_YEAR = re.compile(r"(?P<t>[Tt]háng)\s+(?P<m>\d{1,2})[/.\-](?P<y>\d{4})" + _END)
_CLOCK = re.compile(_NOT_WORD + r"(?P<h>[01]?\d|2[0-4]):(?P<m>[0-5]\d)(?::[0-5]\d)?" + _END)
_HOUR = re.compile(_NOT_WORD + r"(?P<h>[01]?\d|2[0-4])h(?:(?P<m>[0-5]\d)(?:ph|p|')?)?" + _END)
_PHONE = re.compile(
    r"(?<![\w+])(?P<n>(?:\+84|0)(?:[ .]?\d){8,10}|1[89]00[ .]\d{3,4}(?:[ .]\d{2,3})?)" + _END
)
_RANGE = re.compile(r"(?<=\d)\s*[–-]\s*(?=\d)")
_WEEKDAY_RANGE = re.compile(_NOT_WORD + r"T(?P<a>[2-7])\s*[–-]\s*T(?P<b>[2-7]|CN)" + _END)
_FRACTION = re.compile(r"(?<![\w/])(?P<a>\d{1,2})/(?P<b>\d{1,2})(?![\w/])")
_ORDINAL = re.compile(r"(?P<w>\b[Tt]hứ)\s+(?P<n>\d{1,3})" + _END)
_WEEKDAY = re.compile(r"\bT(?P<n>[2-7])" + _END)
_UNIT_NAMES = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))
_NUMBER = re.compile(
    r"(?<![\w,.])(?P<minus>-(?=\d))?(?P<whole>\d{1,3}(?:\.\d{3})+|\d+)(?:,(?P<frac>\d+))?"
    r"(?:\s?(?P<unit>" + _UNIT_NAMES + r")(?![\w²³]))?"
)
_ANY_DIGITS = re.compile(r"\d+")
_DASH_PAUSE = re.compile(r"\s+[–—-]\s+")
_JOINERS = re.compile(r"[/–—\-_]")


def _abbreviations(table: Mapping[str, str]) -> Callable[[str], str]:
    keys = sorted(table, key=len, reverse=True)
    parts = [
        _NOT_WORD + re.escape(key) + ("" if key.endswith(".") else _END)
        for key in keys
        if key.strip()
    ]
    if not parts:
        return lambda text: text
    pattern = re.compile("|".join(parts))
    return lambda text: pattern.sub(lambda m: _padded(m, table[m.group(0)]), text)


def _padded(m: re.Match[str], words: str) -> str:
    """`words` in place of the match, apart from a letter or digit touching it."""
    text, start, end = m.string, m.start(), m.end()
    before = " " if start > 0 and text[start - 1].isalnum() else ""
    after = " " if end < len(text) and text[end].isalnum() else ""
    return before + words + after


def _sub(pattern: re.Pattern[str], words: Callable[[re.Match[str]], str], text: str) -> str:
    return pattern.sub(lambda m: _padded(m, words(m)), text)


def _date(m: re.Match[str]) -> str:
    day, month = int(m["d"]), int(m["m"])
    year = int(m["y"]) if m["y"] else None
    if not (1 <= day <= 31 and 1 <= month <= 12) or (year is None and not m["ngay"]):
        return m.group(0)  # not a date: a fraction, a document number
    return read_date(day, month, year)


def _month_year(m: re.Match[str]) -> str:
    if not 1 <= int(m["m"]) <= 12:
        return m.group(0)
    return f"{m['t']} {read_month(int(m['m']))} năm {read_number(int(m['y']))}"


def _pause(m: re.Match[str]) -> str:
    """A dash between words is a pause; between numbers ("2021 – 2030") a range."""
    text, start, end = m.string, m.start(), m.end()
    between_numbers = start > 0 and text[start - 1].isdigit() and text[end : end + 1].isdigit()
    return m.group(0) if between_numbers else ", "


def _weekday(n: str) -> str:
    return "chủ nhật" if n == "CN" else "thứ " + read_ordinal(int(n))


def _number(m: re.Match[str]) -> str:
    whole = m["whole"].replace(".", "")
    words = read_decimal(whole, m["frac"]) if m["frac"] else read_number(int(whole))
    if m["minus"]:
        words = "âm " + words
    if m["unit"]:
        words += " " + UNITS[m["unit"]]
    return words


def spoken_text(text: str, abbreviations: Mapping[str, str] | None = None) -> str:
    """`text` as it is to be read aloud: every number, date, time, phone number and known
    abbreviation in words. `abbreviations` add to (and override) ABBREVIATIONS."""
    table = {**ABBREVIATIONS, **(abbreviations or {})}
    text = unicodedata.normalize("NFC", text)
    text = _DASH_PAUSE.sub(_pause, text)
    text = _abbreviations({unicodedata.normalize("NFC", k): v for k, v in table.items()})(text)
    text = _sub(_MONTH_YEAR, _month_year, text)
    text = _sub(_DATE, _date, text)
    text = _sub(_PHONE, lambda m: read_digits(m["n"]), text)
    text = _sub(_WEEKDAY_RANGE, lambda m: f"{_weekday(m['a'])} đến {_weekday(m['b'])}", text)
    text = _RANGE.sub(" đến ", text)
    text = _sub(
        _FRACTION, lambda m: f"{read_number(int(m['a']))} phần {read_month(int(m['b']))}", text
    )
    text = _sub(_CLOCK, lambda m: read_time(int(m["h"]), int(m["m"])), text)
    text = _sub(_HOUR, lambda m: read_time(int(m["h"]), int(m["m"] or 0)), text)
    text = _sub(_ORDINAL, lambda m: f"{m['w']} {read_ordinal(int(m['n']))}", text)
    text = _sub(_WEEKDAY, lambda m: _weekday(m["n"]), text)
    text = _sub(_NUMBER, _number, text)
    text = _sub(_ANY_DIGITS, lambda m: read_number(int(m.group(0))), text)
    text = _JOINERS.sub(" ", text)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" ([,.;:!?])", r"\1", text)
    return "\n".join(line.strip() for line in text.splitlines()).strip()
