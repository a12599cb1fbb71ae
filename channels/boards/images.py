"""Images on boards: an item's image checked at import and kept by checksum, and text drawn
with the shipped Vietnamese font for controllers whose own fonts lack the glyphs."""

from __future__ import annotations

import hashlib
import shutil
import textwrap
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


def text_image(text: str, width: int, height: int, color: str = "#ffcc00") -> bytes:
    """`text` drawn as large as fits a `width`×`height` board, as PNG bytes: black ground,
    centred lines, the shipped font (every Vietnamese glyph)."""
    from io import BytesIO

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), "black")
    draw = ImageDraw.Draw(image)
    words = " ".join(text.split()) or " "
    lines: list[str] = [words]
    size = max(6, height)
    while size > 6:
        font = _font(size)
        per_line = max(1, int(width / (size * 0.6)))
        lines = textwrap.wrap(words, per_line) or [" "]
        line_height = int(size * 1.2)
        widest = max(draw.textlength(line, font=font) for line in lines)
        if widest <= width and line_height * len(lines) <= height:
            break
        size -= 1
    font = _font(size)
    line_height = int(size * 1.2)
    top = (height - line_height * len(lines)) // 2
    for i, line in enumerate(lines):
        left = (width - draw.textlength(line, font=font)) / 2
        draw.text((left, top + i * line_height), line, font=font, fill=color)
    out = BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
