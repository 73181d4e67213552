"""The permit page (`hub card permit --png/--pdf`): Chinese set in a real CJK font, not boxes;
long values whole on further lines; the time it was generated; a PDF holding the same page;
and the QR code still readable from both.

Pixels are compared against a reference: the same string drawn on its own, with the same
font, at the place the page says it drew it. A page that dropped, cut or boxed the text
would not match."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageStat
from pypdf import PdfReader

from consumers.card import page, qr
from consumers.card.documents import render_permit
from schemas.permit_token import Claims

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
PERMIT = "156000000000000001"
TOKEN = "eyJwbiI6IjE1NjAwMDAwMDAwMDAwMDAwMSJ9.c2lnbmF0dXJlLW5vdC1jaGVja2VkLWhlcmU"
"""The page only carries the token; its signature is the verifier's business (test_card_qr)."""
CLAIMS = Claims(permit_no=PERMIT, card_id="ESSC0123456789ABCDEF", issued_at=NOW,
                expires_at=NOW + timedelta(minutes=10))
BEIJING = "北京字节跳动科技有限公司"
SHANGHAI = "上海浦东发展银行"
LONG = ("北京字节跳动科技有限公司（上海浦东发展银行联合实验室）"
        "Beijing ByteDance Technology Co., Ltd. Shanghai Pudong Development Bank Joint Lab")


def document(employer: str = BEIJING, position: str = "Engineer") -> dict[str, object]:
    """A permit as `query_permit` answers it, with the employer and position given."""
    return {"permit": {
        "permit_no": PERMIT, "holder_name": "Anna Schmidt", "nationality": "DE",
        "category": "B", "employer_name": employer, "position": position,
        "valid_from": "2025-06-01", "valid_until": "2026-05-31", "status": "active",
        "standard": "integrated",
    }}


def drawn(lines: tuple[str, ...] | list[str],
          face: ImageFont.FreeTypeFont | None = None) -> Image.Image:
    """A reference: `lines` alone on white, in the page's font unless `face` is given."""
    image = Image.new("RGB", (page.VALUE_WIDTH, page.LINE_HEIGHT * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((0, i * page.LINE_HEIGHT), line, fill="black",
                  font=face or page.font(page.TEXT_SIZE))
    return image


def value_area(rendered: page.Page, key: str) -> Image.Image:
    """The part of the page where the value of `key` was drawn."""
    return rendered.image.crop(rendered.fields[key].box)


def same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and ImageChops.difference(a, b).getbbox() is None


def test_chinese_employer_names_are_drawn_in_the_cjk_font_and_the_qr_still_reads() -> None:
    """北京字节跳动科技有限公司 and 上海浦东发展银行 each appear as their own glyphs: the
    page's pixels equal the string drawn alone in Noto Sans SC, differ from the other string,
    and differ from Pillow's default font, which draws 北京 and 上海 as the same boxes."""
    beijing = render_permit(document(BEIJING), TOKEN, CLAIMS, NOW)
    shanghai = render_permit(document(SHANGHAI), TOKEN, CLAIMS, NOW)
    assert beijing.fields["employer_name"].lines == (BEIJING,)

    assert same(value_area(beijing, "employer_name"), drawn([BEIJING]))
    assert same(value_area(shanghai, "employer_name"), drawn([SHANGHAI]))
    assert not same(value_area(beijing, "employer_name"), drawn([SHANGHAI]))
    assert not same(value_area(beijing, "employer_name"), value_area(shanghai, "employer_name"))

    pillow_default = ImageFont.load_default(size=page.TEXT_SIZE)
    assert same(drawn(["北京"], pillow_default), drawn(["上海"], pillow_default))  # tofu
    assert not same(drawn(["北京"]), drawn(["上海"]))
    assert not same(value_area(beijing, "employer_name"), drawn([BEIJING], pillow_default))

    assert qr.decode_png(beijing.png()) == TOKEN
    assert qr.decode_png(shanghai.png()) == TOKEN


def test_the_labels_are_in_chinese_and_english() -> None:
    """Each value has its Chinese label and its English one."""
    labels = {f.label for f in render_permit(document(), TOKEN, CLAIMS, NOW).fields.values()}
    assert {"姓名 Name", "国籍 Nationality", "工作单位 Employer", "职位 Position",
            "类别 Category", "有效期 Valid", "许可证号 Permit No.",
            "生成时间 Generated at"} <= labels


def test_a_value_longer_than_42_characters_is_drawn_whole_on_further_lines() -> None:
    """A 99-character employer is wrapped, not cut: its lines give it back exactly, each fits
    the column, the page shows exactly those lines, grows by them, and the QR still reads."""
    assert len(LONG) > 42
    short = render_permit(document(BEIJING), TOKEN, CLAIMS, NOW)
    long = render_permit(document(LONG, position="Principal " * 12), TOKEN, CLAIMS, NOW)
    employer = long.fields["employer_name"]
    assert "".join(employer.lines) == LONG
    assert len(employer.lines) >= 3
    face = page.font(page.TEXT_SIZE)
    assert all(face.getlength(line.rstrip()) <= page.VALUE_WIDTH for line in employer.lines)
    assert same(value_area(long, "employer_name"), drawn(employer.lines))
    assert "".join(long.fields["position"].lines) == "Principal " * 12
    grown = len(employer.lines) - 1 + len(long.fields["position"].lines) - 1
    assert long.image.height == short.image.height + grown * page.LINE_HEIGHT
    assert qr.decode_png(long.png()) == TOKEN


def test_the_page_says_when_it_was_generated_in_utc_and_beijing_time() -> None:
    """The as-of line is on the page: 20:30 UTC on 1 March is 04:30 on 2 March in Beijing."""
    at = datetime(2026, 3, 1, 20, 30, tzinfo=UTC)
    rendered = render_permit(document(), TOKEN, CLAIMS, at)
    generated = rendered.fields["generated_at"]
    text = "".join(generated.lines)
    assert text == "2026-03-01 20:30:00 UTC · 北京时间 Beijing 2026-03-02 04:30:00"
    assert same(value_area(rendered, "generated_at"), drawn(generated.lines))


@given(st.lists(st.sampled_from(
    [*"北京上海银行有限公司（）《》，。、 ", *"Ab.,-() ", "W" * 30, "Müller ", "  "]),
    max_size=60).map("".join))
def test_wrapping_keeps_every_character_and_fits_the_column(text: str) -> None:
    """Whatever the text, its lines join back to it and none is wider than the column, save
    a line of one character; no line starts with a closing mark that followed a Han character
    (it stays on the line of the character it closes)."""
    face = page.font(page.TEXT_SIZE)
    lines = page.wrap(text, face, 200)
    assert "".join(lines) == text
    for line in lines:
        assert face.getlength(line.rstrip()) <= 200 or len(line.rstrip()) == 1
    for before, line in pairwise(lines):
        assert not (line[:1] in "）》，。、" and before[-1:] in "北京上海银行有限公司"), lines


def test_the_pdf_is_a_pdf_of_the_same_page_whose_qr_reads() -> None:
    """`--pdf` writes a one-page PDF (pypdf opens it) holding the page's image at 150 dpi:
    the same size, the same pixels give or take JPEG, and the QR code reads from it."""
    rendered = render_permit(document(LONG), TOKEN, CLAIMS, NOW)
    pdf = rendered.pdf()
    assert pdf.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    (embedded,) = reader.pages[0].images
    image = embedded.image
    assert image is not None
    assert image.size == rendered.image.size
    box = reader.pages[0].mediabox
    assert round(float(box.width)) == round(rendered.image.width * 72 / page.PDF_DPI)
    difference = ImageStat.Stat(ImageChops.difference(image.convert("RGB"), rendered.image))
    assert max(difference.mean) < 2
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    assert qr.decode_png(buf.getvalue()) == TOKEN
