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
# The longest name (of a person, unit, group, plan or key) a list or a command may give:
# longer is no name but a damaged file or a wrong column.
MAX_NAME_LENGTH = 200
# Values longer than this are shown shortened in errors, so a refusal stays one line.
SHOWN_LENGTH = 500


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


def shown(value: object) -> object:
    """A value as an error shows it: a very long text cut to its start and its length."""
    if isinstance(value, str) and len(value) > SHOWN_LENGTH:
        return f"{value[:60]}… ({len(value):,} ký tự)"
    return value


def length_problem(text: str, limit: int = MAX_NAME_LENGTH) -> str | None:
    """Why `text` is too long to be what it claims, or None."""
    if len(text) > limit:
        return f"dài {len(text):,} ký tự, quá giới hạn {limit} (tệp hỏng hoặc nhầm cột?)"
    return None


def name_problem(
    text: str, *, allow_empty: bool = False, max_length: int = MAX_NAME_LENGTH
) -> str | None:
    """Why `text` cannot be a name (in Vietnamese, for the user), or None."""
    hidden = hidden_characters(text)
    if hidden:
        listed = ", ".join(describe(c) for c in hidden)
        return f"có ký tự ẩn hoặc ký tự điều khiển ({listed}); hãy xóa chúng và nhập lại"
    if not allow_empty and not text.strip():
        return "không được để trống"
    return length_problem(text, max_length)


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
    max_length: int = MAX_NAME_LENGTH,
    source: str | None = None,
    line: int | None = None,
) -> str:
    """The name in NFC without surrounding spaces; InputError naming the field and value
    when it is blank, too long or holds invisible characters."""
    text = nfc(value).strip()
    problem = name_problem(text, allow_empty=allow_empty, max_length=max_length)
    if problem:
        raise InputError(field, shown(value), problem, source=source, line=line)
    return text


def argument(field: str, value: str) -> str:
    """A command-line argument that names something to look up (a plan number, key, unit,
    phone): refused, naming it, when it holds control or invisible characters or is far too
    long to name anything; the value unchanged otherwise (an empty or unknown one is the
    command's to answer)."""
    hidden = hidden_characters(value)
    if hidden:
        listed = ", ".join(describe(c) for c in hidden)
        raise InputError(
            field, shown(value), f"có ký tự ẩn hoặc ký tự điều khiển ({listed}); hãy nhập lại"
        )
    problem = length_problem(value, SHOWN_LENGTH)
    if problem:
        raise InputError(field, shown(value), problem)
    return value


def check_arguments(**values: str | list[str] | None) -> None:
    """Every given command-line argument checked by `argument`, named by its parameter."""
    for field, value in values.items():
        for one in value if isinstance(value, list) else [value]:
            if one is not None:
                argument(field, one)
