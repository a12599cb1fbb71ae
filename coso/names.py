"""Names people type (plan numbers, keys, unit, endpoint and group names): one Unicode form
(NFC), so "Kế hoạch" typed with combining marks is the same name as the precomposed one,
and no invisible characters, so a name that looks like another is not a different one."""

from __future__ import annotations

import unicodedata

from coso.errors import InputError

# Control, format (bidirectional overrides, zero-width joiners), surrogate, private-use and
# unassigned characters, and line or paragraph separators: none belongs in a name.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# What free text (titles, bodies) may hold of them: line breaks and tabs.
TEXT_CONTROLS = frozenset("\n\r\t")


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def describe(char: str) -> str:
    """'U+202E RIGHT-TO-LEFT OVERRIDE', 'U+0000' (a NUL has no Unicode name)."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" {name}" if name else "")


def hidden_characters(text: str, allowed: frozenset[str] = frozenset()) -> list[str]:
    """The characters of `text` that have no place in it, each once, in order."""
    found = [c for c in text if c not in allowed and unicodedata.category(c) in HIDDEN_CATEGORIES]
    return list(dict.fromkeys(found))


def name_problem(text: str, *, allow_empty: bool = False) -> str | None:
    """Why `text` cannot be a name (in Vietnamese, for the user), or None."""
    hidden = hidden_characters(text)
    if hidden:
        listed = ", ".join(describe(c) for c in hidden)
        return f"có ký tự ẩn hoặc ký tự điều khiển ({listed}); hãy xóa chúng và nhập lại"
    if not allow_empty and not text.strip():
        return "không được để trống"
    return None


def text_problem(text: str) -> str | None:
    """Why free text (a title, a body) cannot be stored, or None: control characters other
    than line breaks and tabs (a NUL, say)."""
    hidden = [c for c in hidden_characters(text, TEXT_CONTROLS) if unicodedata.category(c) == "Cc"]
    if hidden:
        listed = ", ".join(describe(c) for c in hidden)
        return f"có ký tự điều khiển ({listed}); hãy xóa chúng và nhập lại"
    return None


def check_name(
    field: str,
    value: str,
    *,
    allow_empty: bool = False,
    source: str | None = None,
    line: int | None = None,
) -> str:
    """The name in NFC without surrounding spaces; InputError naming the field and value
    when it is blank or holds invisible characters."""
    text = nfc(value).strip()
    problem = name_problem(text, allow_empty=allow_empty)
    if problem:
        raise InputError(field, value, problem, source=source, line=line)
    return text
