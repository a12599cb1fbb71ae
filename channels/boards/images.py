"""Images on boards: an item's image checked at import and kept by checksum, and text drawn
with the shipped Vietnamese font for controllers whose own fonts lack the glyphs: as large
as fits the board, or, when it is too long to read at the board's smallest size, in pages."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from channels.boards.settings import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS

STATIC = Path(__file__).parent / "static"
FONT = STATIC / "DejaVuSans-Bold.ttf"
KINDS = {"PNG": "png", "JPEG": "jpg"}


def check_image(path: Path) -> str:
    """The image's kind ("png" or "jpg"); ValueError saying what is wrong with it."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise ValueError(f"no image file at {path}")
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise ValueError(
            f"image {path.name} is {size / 1048576:.1f} MB, more than a board takes "
            f"({MAX_IMAGE_BYTES // 1048576} MB)"
        )
    try:
        with Image.open(path) as image:
            kind, (width, height) = image.format, image.size
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path.name} is not a PNG or JPEG image") from exc
    if kind not in KINDS:
        raise ValueError(f"{path.name} is {kind}, not a PNG or JPEG image")
    most_w, most_h = MAX_IMAGE_PIXELS
    if width > most_w or height > most_h:
        raise ValueError(
            f"image {path.name} is {width}×{height} pixels, larger than a board shows "
            f"({most_w}×{most_h} at most)"
        )
    return KINDS[kind]


def keep_image(source: Path, folder: Path) -> str:
    """Copy an item's image into the boards' image folder under its checksum; its name."""
    kind = check_image(source)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    name = f"{digest}.{kind}"
    target = folder / name
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        shutil.copyfile(source, partial)
        partial.replace(target)
    return name


@cache
def _font(size: int):  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    return ImageFont.truetype(str(FONT), size)


@dataclass(frozen=True)
class Page:
    """One screenful of an item's text on an LED board: its lines, at `size` pixels."""

    lines: tuple[str, ...]
    size: int

    @property
    def text(self) -> str:
        return " ".join(self.lines)


def smallest_size(height: int) -> int:
    """The smallest font an LED board `height` pixels tall is given text in, so that it is
    read from across the street: a quarter of its height, 10 to 32 pixels (less only on a
    board too low for one line of 10)."""
    return max(1, min(max(10, height // 4), 32, int(height / 1.4)))


def _pitch(size: int) -> int:
    """From one line to the next: room for Vietnamese letters with two marks (Ễ, Ẫ)."""
    return -(-size * 13 // 10)


def _block(lines: Sequence[str], size: int) -> tuple[int, int]:
    """Where the ink of these lines starts above the first line's position, and how tall
    it is from there to the bottom of the last line."""
    font = _font(size)
    top = min(0, font.getbbox(lines[0])[1])
    bottom = max(font.getbbox(lines[-1])[3], sum(font.getmetrics()))
    return top, _pitch(size) * (len(lines) - 1) + bottom - top


def _wide(line: str, size: int) -> float:
    """How wide the ink of `line` is (a letter's ink may reach past its advance)."""
    x0, _, x1, _ = _font(size).getbbox(line)
    return x1 - x0


def _fits(lines: Sequence[str], size: int, width: int, height: int) -> bool:
    return all(_wide(line, size) <= width for line in lines) and (_block(lines, size)[1] <= height)


def _wrap(paragraphs: Sequence[str], size: int, width: int) -> list[str]:
    """The paragraphs broken into lines no wider than `width` (a word wider than that on
    its own is broken between letters)."""
    lines: list[str] = []
    for paragraph in paragraphs:
        line = ""
        for word in paragraph.split():
            joined = f"{line} {word}" if line else word
            if _wide(joined, size) <= width:
                line = joined
                continue
            if line:
                lines.append(line)
            line = ""
            for letter in word:  # a word alone too wide: as many letters as fit a line
                if line and _wide(line + letter, size) > width:
                    lines.append(line)
                    line = ""
                line += letter
        if line:
            lines.append(line)
    return lines or [" "]


def text_pages(text: str, width: int, height: int) -> list[Page]:
    """`text` laid out for a `width`×`height` LED board: one page, as large as fits; or,
    when it does not fit at `smallest_size(height)`, as many pages as it takes at that
    size, each filled with whole lines, the words in their order."""
    paragraphs = [" ".join(p.split()) for p in text.splitlines() if p.strip()] or [" "]
    least = smallest_size(height)
    for size in range(max(least, min(height, 200)), least - 1, -1):
        lines = _wrap(paragraphs, size, width)
        if _fits(lines, size, width, height):
            return [Page(tuple(lines), size)]
    pages: list[Page] = []
    page: list[str] = []
    for line in _wrap(paragraphs, least, width):
        if page and not _fits([*page, line], least, width, height):
            pages.append(Page(tuple(page), least))
            page = []
        page.append(line)
    pages.append(Page(tuple(page), least))
    return pages


def line_boxes(page: Page, width: int, height: int) -> list[tuple[float, float, float, float]]:
    """Where each line of `page` is drawn on the board: (left, top, right, bottom) of its
    ink, the lines centred both ways."""
    font = _font(page.size)
    top, tall = _block(page.lines, page.size)
    y = (height - tall) // 2 - top
    boxes = []
    for i, line in enumerate(page.lines):
        x0, y0, x1, y1 = font.getbbox(line)
        left = (width - (x1 - x0)) / 2
        at = y + i * _pitch(page.size)
        boxes.append((left, at + y0, left + x1 - x0, at + y1))
    return boxes


def page_image(page: Page, width: int, height: int, color: str = "#ffcc00") -> bytes:
    """One page drawn at the board's resolution, as PNG bytes: black ground, the lines
    centred, the shipped font (every Vietnamese glyph)."""
    from io import BytesIO

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), "black")
    draw = ImageDraw.Draw(image)
    font = _font(page.size)
    for line, (left, top, _, _) in zip(page.lines, line_boxes(page, width, height), strict=True):
        x0, y0, _, _ = font.getbbox(line)
        draw.text((left - x0, top - y0), line, font=font, fill=color)
    out = BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
