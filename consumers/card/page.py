"""The permit document as a page: Chinese and English labels, values wrapped whole, the time
it was generated, the fresh QR code; saved as PNG or as a one-page PDF of the same image.

Why these choices:

- **The font comes with a package, not from the system.** Pillow's bundled font has no Han
  glyphs (北京 and 上海 come out as the same boxes) and a server has no CJK font to fall back
  on, so the page is set in Noto Sans SC from `pylopdf-fonts-zh-cn` (SIL OFL, 17 MB wheel,
  no dependencies; its `sans_path()` is the file's only way in). The Simplified Chinese
  face gives the mainland glyph forms, and it has Latin, Greek and Cyrillic too, so one
  font sets both languages and names like "Müller".
- **Nothing is cut.** A value is broken into lines measured with the same font: between any
  two Han characters, at spaces in other scripts, and within a word only when the word
  alone is wider than the column. The lines joined give the value back exactly, and the page
  grows to hold them.
- **The page says as of when.** A download is a snapshot of the card service's view; the
  generated-at line gives the instant in UTC and in Beijing time (the permit's dates are
  Chinese dates).
- **The PDF is the same page.** Pillow writes the rendered image into a PDF (JPEG at quality
  95 without chroma subsampling: the QR still reads, and a page is about 200 kB). A PDF library
  setting real text would have to embed the font, and the common one (reportlab) embeds
  TrueType outlines only, not Noto's CFF; the image is what the holder sees either way.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pylopdf_fonts_zh_cn
from PIL import Image, ImageDraw, ImageFont

from consumers.card.rules import CHINA_TIME
from schemas.permit_token import Claims

TEXT_SIZE = 20
TITLE_SIZE = 26
LINE_HEIGHT = 30
"""Pixels from one line's top to the next: 1.5 times the text size keeps descenders clear."""
VALUE_WIDTH = 600
"""The value column's width in pixels: longer values wrap, never shrink or cut."""
MARGIN = 30
GAP = 24
LABEL_FILL = "#555555"
VALUE_FILL = "black"
PDF_DPI = 150
"""The PDF page is the image at this resolution (a 1,280-pixel page is 21.7 cm wide, about A4)."""

_CJK = "\u2e80-\u2fff\u3000-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
_OPENING = "\uff08\u300a\u3008\u300c\u300e\u3010\u3014\u201c\u2018(["
"""Opening brackets and quotes, fullwidth and CJK, then ASCII: kept with what follows."""
_CLOSING = ("\uff09\u300b\u3009\u300d\u300f\u3011\u3015\u201d\u2019"
            "\uff0c\u3002\u3001\uff1b\uff1a\uff01\uff1f),.;:!?]")
"""Closing brackets, quotes and punctuation, fullwidth and CJK, then ASCII: kept with what
precedes."""
_PIECES = re.compile(rf"\s+|[{re.escape(_OPENING)}]*[{_CJK}][{re.escape(_CLOSING)}]*\s*"
                     rf"|[^\s{_CJK}]+\s*")
"""What a line may break after: each Han character or CJK mark, with the opening brackets
before it and the closing marks after it (no line starts with a closing bracket or a comma),
or a run of other text with the spaces after it (leading spaces are a piece of their own)."""

TITLE = ("外国人工作许可 · 电子社保卡", "Foreigner's Work Permit · e-SSC")


@dataclass(frozen=True)
class Field:
    """One labelled value as laid out: its wrapped lines and where the first one is drawn."""

    label: str
    lines: tuple[str, ...]
    origin: tuple[int, int]

    @property
    def box(self) -> tuple[int, int, int, int]:
        """The value's area on the page (left, top, right, bottom): all its lines."""
        x, y = self.origin
        return (x, y, x + VALUE_WIDTH, y + LINE_HEIGHT * len(self.lines))


@dataclass(frozen=True)
class Page:
    """The rendered page and where each value went (tests compare those areas' pixels)."""

    image: Image.Image
    fields: Mapping[str, Field]

    def png(self) -> bytes:
        """The page as PNG."""
        buf = io.BytesIO()
        self.image.save(buf, format="PNG")
        return buf.getvalue()

    def pdf(self) -> bytes:
        """The page as a one-page PDF holding the same image."""
        buf = io.BytesIO()
        self.image.save(buf, format="PDF", resolution=PDF_DPI, quality=95, subsampling=0,
                        title="Foreigner's Work Permit", producer="permit-hub")
        return buf.getvalue()


@cache
def font(size: int) -> ImageFont.FreeTypeFont:
    """Noto Sans SC at `size` pixels, from the font package (loaded once per size)."""
    return ImageFont.truetype(str(pylopdf_fonts_zh_cn.sans_path()), size)


def wrap(text: str, face: ImageFont.FreeTypeFont, width: float) -> list[str]:
    """`text` in lines no wider than `width` when set in `face`; joined, they are `text`."""
    lines = [""]
    for piece in _PIECES.findall(text):
        if _fits(lines[-1] + piece.rstrip(), face, width):
            lines[-1] += piece
        elif _fits(piece.rstrip(), face, width):
            lines.append(piece)
        else:  # a word wider than the column: break it between characters
            for char in piece:
                if lines[-1].strip() and not char.isspace() and not _fits(
                        lines[-1] + char, face, width):
                    lines.append("")
                lines[-1] += char
    return lines[1:] if len(lines) > 1 and not lines[0] else lines


def _fits(text: str, face: ImageFont.FreeTypeFont, width: float) -> bool:
    return face.getlength(text) <= width


def generated_line(at: datetime) -> str:
    """The as-of line: the instant in UTC and in Beijing time."""
    return (f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC · "
            f"北京时间 Beijing {at.astimezone(CHINA_TIME):%Y-%m-%d %H:%M:%S}")


def labelled_values(document: Mapping[str, Any], claims: Claims,
                    generated_at: datetime) -> list[tuple[str, str, str]]:
    """(key, label in Chinese and English, value) for each line of the page, in order."""
    permit = document["permit"]
    return [
        ("permit_no", "许可证号 Permit No.", permit["permit_no"]),
        ("holder_name", "姓名 Name", permit["holder_name"]),
        ("nationality", "国籍 Nationality", permit["nationality"]),
        ("category", "类别 Category", permit["category"]),
        ("employer_name", "工作单位 Employer", permit["employer_name"]),
        ("position", "职位 Position", permit["position"]),
        ("valid", "有效期 Valid",
         f"{permit['valid_from'] or '-'} to {permit['valid_until'] or '-'}"),
        ("status", "状态 Status", f"{permit['status']} ({permit['standard']})"),
        ("card_id", "电子社保卡 e-SSC", claims.card_id),
        ("qr_valid_until", "二维码有效至 QR valid until",
         f"{claims.expires_at:%Y-%m-%d %H:%M:%S} UTC"),
        ("generated_at", "生成时间 Generated at", generated_line(generated_at)),
    ]


def render(document: Mapping[str, Any], qr_code: Image.Image, claims: Claims,
           generated_at: datetime) -> Page:
    """The permit page: title, labelled values beside the QR code, wrapped to fit."""
    text, title = font(TEXT_SIZE), font(TITLE_SIZE)
    rows = labelled_values(document, claims, generated_at)
    label_width = int(max(text.getlength(label) for _, label, _ in rows)) + GAP
    value_x = MARGIN + label_width
    wrapped = [(key, label, wrap(str(value), text, VALUE_WIDTH)) for key, label, value in rows]
    top = MARGIN + 2 * (TITLE_SIZE + 12) + 10
    rows_height = LINE_HEIGHT * sum(len(lines) for _, _, lines in wrapped)
    width = value_x + VALUE_WIDTH + GAP + qr_code.width + MARGIN
    height = max(top + rows_height, top + qr_code.height) + MARGIN
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(TITLE):
        draw.text((MARGIN, MARGIN + i * (TITLE_SIZE + 12)), line, fill=VALUE_FILL, font=title)
    fields: dict[str, Field] = {}
    y = top
    for key, label, lines in wrapped:
        draw.text((MARGIN, y), label, fill=LABEL_FILL, font=text)
        for i, line in enumerate(lines):
            draw.text((value_x, y + i * LINE_HEIGHT), line, fill=VALUE_FILL, font=text)
        fields[key] = Field(label, tuple(lines), (value_x, y))
        y += LINE_HEIGHT * len(lines)
    canvas.paste(qr_code, (width - qr_code.width - MARGIN, top))
    return Page(canvas, fields)
