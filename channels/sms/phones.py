"""Vietnamese phone numbers for SMS: parsed with `phonenumbers` (default region VN), the
old 11-digit mobile numbers moved to their 10-digit form of 2018, stored in E.164."""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

# Mobile prefixes renumbered in 2018 (national significant number, without the leading 0):
# 0162 xxx xxxx became 032 xxx xxxx, and so on.
OLD_MOBILE_PREFIXES = {
    # Viettel
    "162": "32", "163": "33", "164": "34", "165": "35",
    "166": "36", "167": "37", "168": "38", "169": "39",
    # MobiFone
    "120": "70", "121": "79", "122": "77", "126": "76", "128": "78",
    # VinaPhone
    "123": "83", "124": "84", "125": "85", "127": "81", "129": "82",
    # Vietnamobile
    "186": "56", "188": "58",
    # Gmobile
    "199": "59",
}  # fmt: skip
SEPARATORS = re.compile(r"[\s.\-()/]")
# What remains of a number once the separators are gone: an optional + and ASCII digits.
# phonenumbers would read letters as a keypad does ('0912 HOA 678' → 0912462678): someone
# else's number, so a letter, or anything else, is refused instead.
DIGITS = re.compile(r"\+?[0-9]+")
MOBILE = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)


class PhoneError(ValueError):
    """Why a text is not a mobile number SMS can reach."""


def modernise(national: str) -> str:
    """An old 10-digit national significant number (11 digits with the 0) → today's 9."""
    if len(national) == 10 and national[:3] in OLD_MOBILE_PREFIXES:
        return OLD_MOBILE_PREFIXES[national[:3]] + national[3:]
    return national


def to_e164(raw: str, region: str = "VN") -> str:
    """'0162 345 6789', '+84 32 345 6789', '84323456789' → '+84323456789'; a number that
    is not a valid mobile number raises PhoneError saying why."""
    # NFKC: digits typed full-width by an input method are the ASCII ones.
    text = SEPARATORS.sub("", unicodedata.normalize("NFKC", raw).strip())
    if not text:
        raise PhoneError("is empty")
    if not DIGITS.fullmatch(text):
        strange = "".join(dict.fromkeys(c for c in text if not c.isascii() or not c.isdigit()))
        kind = "chữ cái" if any(c.isalpha() for c in strange) else "ký tự lạ"
        raise PhoneError(
            f"có {kind} {strange!r}: số điện thoại chỉ gồm chữ số (có thể có dấu + ở đầu, "
            "dấu cách, chấm, gạch ngang hoặc ngoặc); không gửi tin cho số này"
        )
    if text.startswith("00"):
        text = "+" + text[2:]
    if text.startswith("84") and len(text) in (11, 12) and region == "VN":
        text = "+" + text  # written without the +
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise PhoneError(f"not a phone number ({exc.args[0] if exc.args else exc})") from exc
    if number.country_code == 84:
        national = modernise(str(number.national_number))
        number = phonenumbers.parse("+84" + national, None)
    if not phonenumbers.is_valid_number(number):
        raise PhoneError("not a valid number")
    if phonenumbers.number_type(number) not in MOBILE:
        raise PhoneError("not a mobile number (SMS cannot reach it)")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)
