"""The layers: imports point one way (coso ← content ← channels ← schedules ← dispatcher), a
channel package never reaches into the engine, and the engine names no channel."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CHANNEL_WORDS = re.compile(r"\b(sms|loudspeaker|web|led|station|boards|huidu)\b", re.IGNORECASE)


def _modules(folder: str) -> list[Path]:
    return [
        p
        for p in sorted((ROOT / folder).rglob("*.py"))
        if "migrations/versions" not in p.as_posix()  # history: written once, never changed
    ]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("coso", ("content", "channels", "schedules", "dispatcher")),
        ("content", ("channels", "schedules", "dispatcher")),
        ("channels", ("schedules", "dispatcher")),
        ("schedules", ("dispatcher",)),
    ],
)
def test_imports_point_one_way(folder: str, forbidden: tuple[str, ...]) -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(folder)
        for name in sorted(_imports(path))
        if name.split(".")[0] in forbidden
    ]
    assert wrong == []


def _code_words(path: Path) -> list[str]:
    """Names and strings of the code, less comments and docstrings."""
    source = path.read_text(encoding="utf-8")
    docstrings = {
        (node.body[0].value.lineno, node.body[0].value.col_offset)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
        and isinstance(node.body[0].value.value, str)
    }
    words = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.STRING and tok.start in docstrings:
            continue
        if tok.type in (tokenize.NAME, tokenize.STRING):
            words += [
                f"{path.relative_to(ROOT)}:{tok.start[0]}: {w}"
                for w in CHANNEL_WORDS.findall(tok.string)
            ]
    return words


def test_the_engine_schedules_and_the_foundation_name_no_channel() -> None:
    engine = [p for p in (ROOT / "dispatcher").glob("*.py")]  # not its cli/ and web/ layers
    named = [
        w for path in engine + _modules("schedules") + _modules("coso") for w in _code_words(path)
    ]
    assert named == []
