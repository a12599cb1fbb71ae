"""A CAP 1.2 document read into a typed alert: parsed without DTDs, entities or network,
checked against the OASIS schema (schema/CAP-v1.2.xsd), then the spec's rules the schema
does not hold. Every refusal names the element and the value, in Vietnamese."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from coso.errors import InputError

if TYPE_CHECKING:  # lxml (about 7 MB) loads with the first CAP document, not with the console
    from lxml import etree

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
SCHEMA_FILE = Path(__file__).parent / "schema" / "CAP-v1.2.xsd"
DEFAULT_MAX_BYTES = 512 * 1024
VIETNAMESE = ("vi", "vi-vn")
# identifier and sender: no spaces, commas or the XML-reserved < and & (CAP 1.2, 3.2.1).
NO_SPACES = re.compile(r"^[^\s,<&]+$")


@dataclass(frozen=True)
class Info:
    language: str
    event: str
    urgency: str
    severity: str
    certainty: str
    headline: str = ""
    description: str = ""
    instruction: str = ""
    sender_name: str = ""
    expires: datetime | None = None

    def text(self) -> str:
        """What people hear and read: the headline, the description, the instruction."""
        parts = [self.headline, self.description, self.instruction]
        return "\n\n".join(p.strip() for p in parts if p.strip()) or self.event


@dataclass(frozen=True)
class Geocode:
    name: str
    value: str


@dataclass(frozen=True)
class Area:
    description: str
    polygons: tuple[str, ...] = ()
    circles: tuple[str, ...] = ()
    geocodes: tuple[Geocode, ...] = ()


@dataclass(frozen=True)
class Reference:
    """One earlier message an Update or Cancel names: sender,identifier,sent."""

    sender: str
    identifier: str
    sent: str


@dataclass(frozen=True)
class Alert:
    identifier: str
    sender: str
    sent: datetime
    status: str  # Actual, Exercise, System, Test, Draft
    msg_type: str  # Alert, Update, Cancel, Ack, Error
    scope: str
    references: tuple[Reference, ...] = ()
    note: str = ""
    infos: tuple[Info, ...] = ()
    areas: tuple[Area, ...] = field(default=())

    def chosen_info(self) -> Info | None:
        """The Vietnamese info block, else the first."""
        for info in self.infos:
            if info.language.lower() in VIETNAMESE:
                return info
        return self.infos[0] if self.infos else None

    def texts(self) -> dict[str, str]:
        """Each language's text (the first info block of a language)."""
        found: dict[str, str] = {}
        for info in self.infos:
            found.setdefault(info.language, info.text())
        return found

    def expires(self) -> datetime | None:
        info = self.chosen_info()
        return info.expires if info else None


@cache
def cap_schema() -> etree.XMLSchema:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(SCHEMA_FILE), parser))


def read_alert(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Alert:
    """The alert in `data`, or an InputError naming what is wrong (field and value)."""
    root = parse_document(data, max_bytes)
    check_schema(root)
    return alert_of(root)


def parse_document(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """The document's root element: a CAP 1.2 alert, without DTD, entities or network."""
    if len(data) > max_bytes:
        raise InputError("tài liệu", f"{len(data):,} byte", f"lớn hơn giới hạn {max_bytes:,} byte")
    if not data.strip():
        raise InputError("tài liệu", "", "rỗng: không có nội dung XML")
    from lxml import etree

    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise InputError("tài liệu", _head(data), f"không phải XML hợp lệ: {exc}") from exc
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise InputError(
            "DOCTYPE", tree.docinfo.doctype, "tài liệu CAP không được có DTD hay thực thể"
        )
    if root.tag != f"{{{CAP_NS}}}alert":
        raise InputError(
            "phần tử gốc",
            root.tag,
            f'không phải cảnh báo CAP 1.2 (cần <alert xmlns="{CAP_NS}">)',
        )
    return root


def check_schema(root: etree._Element) -> None:
    """Refuse the first place where the document breaks the CAP 1.2 schema."""
    from lxml import etree

    schema = cap_schema()
    if schema.validate(root):
        return
    error = schema.error_log[0]
    element = _element_at(root, error.path)
    name = etree.QName(element).localname if element is not None else error.path
    value = (element.text or "").strip() if element is not None else ""
    raise InputError(
        _field_path(element) if element is not None else name,
        value,
        f"không đúng lược đồ CAP 1.2 (dòng {error.line}): {_message(error.message)}",
    )


def _element_at(root: etree._Element, path: str | None) -> etree._Element | None:
    from lxml import etree

    if not path:
        return None
    try:
        found = root.getroottree().xpath(path)
    except etree.XPathError:
        return None
    return found[0] if isinstance(found, list) and found else None


def _field_path(element: etree._Element) -> str:
    """alert/info[1]/urgency: where an element is, by CAP's names."""
    from lxml import etree

    parts = []
    node: etree._Element | None = element
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        if parent is not None:
            same = [c for c in parent if isinstance(c.tag, str) and c.tag == node.tag]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/".join(reversed(parts))


# lxml's commonest schema errors, in Vietnamese; any other keeps lxml's words.
SCHEMA_WORDS = (
    (
        re.compile(
            r"\[facet 'enumeration'\] The value '(.*)' is not an element of the set \{(.*)\}"
        ),
        "giá trị {0!r} không thuộc các giá trị được phép: {1}",
    ),
    (
        re.compile(r"\[facet 'pattern'\] The value '(.*)' is not accepted by the pattern"),
        "giá trị {0!r} sai dạng (thời điểm CAP: yyyy-mm-ddThh:mm:ss+hh:mm)",
    ),
    (
        re.compile(r"This element is not expected\. Expected is one of \( (.*) \)"),
        "phần tử không đúng chỗ hoặc thiếu phần tử bắt buộc trước nó; cần một trong: {0}",
    ),
    (
        re.compile(r"This element is not expected\. Expected is \( (.*) \)"),
        "phần tử không đúng chỗ hoặc thiếu phần tử bắt buộc {0} trước nó",
    ),
    (re.compile(r"This element is not expected\.$"), "phần tử không được có ở đây"),
    (
        re.compile(r"Missing child element\(s\)\. Expected is (?:one of )?\( (.*) \)"),
        "thiếu phần tử bắt buộc: {0}",
    ),
    (
        re.compile(r"'(.*)' is not a valid value of the atomic type '(.*)'"),
        "giá trị {0!r} không phải kiểu {1}",
    ),
)


def _message(message: str) -> str:
    """lxml's words in Vietnamese where known, with the namespace left out."""
    plain = message.replace(f"{{{CAP_NS}}}", "").replace("xs:", "").strip()
    detail = plain.split(": ", 1)[1] if plain.startswith("Element ") and ": " in plain else plain
    for pattern, words in SCHEMA_WORDS:
        found = pattern.search(detail.rstrip("."))
        if found:
            return words.format(*found.groups())
    return plain


def _head(data: bytes) -> str:
    return data[:60].decode("utf-8", "replace")


def _text(parent: etree._Element, name: str) -> str:
    child = parent.find(f"{{{CAP_NS}}}{name}")
    return (child.text or "").strip() if child is not None else ""


def _texts(parent: etree._Element, name: str) -> tuple[str, ...]:
    return tuple((c.text or "").strip() for c in parent.findall(f"{{{CAP_NS}}}{name}"))


def _time(field_name: str, text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise InputError(
            field_name, text, "không phải thời điểm CAP (yyyy-mm-ddThh:mm:ss+hh:mm)"
        ) from exc


def alert_of(root: etree._Element) -> Alert:
    """The typed alert of a schema-valid root, with the spec's rules the schema leaves out."""
    identifier, sender = _text(root, "identifier"), _text(root, "sender")
    for name, value in (("alert/identifier", identifier), ("alert/sender", sender)):
        if not NO_SPACES.match(value):
            raise InputError(name, value, "không được rỗng, có dấu cách, dấu phẩy, < hay &")
    references = tuple(_reference(word) for word in _text(root, "references").split() if word)
    msg_type = _text(root, "msgType")
    if msg_type in ("Update", "Cancel") and not references:
        raise InputError(
            "alert/references", "", f"bản tin {msg_type} phải nêu bản tin trước (references)"
        )
    infos = []
    areas: list[Area] = []
    for n, info in enumerate(root.findall(f"{{{CAP_NS}}}info"), start=1):
        expires = _text(info, "expires")
        infos.append(
            Info(
                language=_text(info, "language") or "en-US",
                event=_text(info, "event"),
                urgency=_text(info, "urgency"),
                severity=_text(info, "severity"),
                certainty=_text(info, "certainty"),
                headline=_text(info, "headline"),
                description=_text(info, "description"),
                instruction=_text(info, "instruction"),
                sender_name=_text(info, "senderName"),
                expires=_time(f"alert/info[{n}]/expires", expires) if expires else None,
            )
        )
        for area in info.findall(f"{{{CAP_NS}}}area"):
            areas.append(
                Area(
                    description=_text(area, "areaDesc"),
                    polygons=_texts(area, "polygon"),
                    circles=_texts(area, "circle"),
                    geocodes=tuple(
                        Geocode(_text(g, "valueName"), _text(g, "value"))
                        for g in area.findall(f"{{{CAP_NS}}}geocode")
                    ),
                )
            )
    return Alert(
        identifier=identifier,
        sender=sender,
        sent=_time("alert/sent", _text(root, "sent")),
        status=_text(root, "status"),
        msg_type=msg_type,
        scope=_text(root, "scope"),
        references=references,
        note=_text(root, "note"),
        infos=tuple(infos),
        areas=tuple(dict.fromkeys(areas)),  # the same area under each language once
    )


def _reference(word: str) -> Reference:
    parts = word.split(",")
    if len(parts) != 3 or not all(parts):
        raise InputError(
            "alert/references", word, "mỗi bản tin được nêu phải có dạng sender,identifier,sent"
        )
    return Reference(*parts)


def identifier_of(data: bytes) -> tuple[str | None, str | None]:
    """(sender, identifier) of a document even when it is refused, to log it by them; None
    where they cannot be read."""
    from lxml import etree

    try:
        root = etree.fromstring(
            data[: DEFAULT_MAX_BYTES * 4],
            etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False),
        )
    except (etree.XMLSyntaxError, ValueError):
        return None, None
    if not isinstance(root.tag, str) or not root.tag.startswith(f"{{{CAP_NS}}}"):
        return None, None
    return (_text(root, "sender") or None), (_text(root, "identifier") or None)
