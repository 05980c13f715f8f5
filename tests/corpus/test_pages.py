"""PDF page choice and rendering on a small PDF written here (PIL writes one image per page)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adir_exp.corpus.pages import (
    ink_fraction,
    page_candidates,
    page_digest,
    picked_pages,
)
from adir_exp.corpus.photos import Candidate, sha256_file


def _text_page(seed: int) -> Image.Image:
    """A white 2 × 3 inch page (at 150 dpi) with rows of dark 'words', about 10 % ink."""
    rng = np.random.default_rng(seed)
    page = np.full((450, 300), 255, dtype=np.uint8)
    for row in range(30, 420, 20):
        x = 20
        while x < 260:
            width = int(rng.integers(10, 40))
            page[row:row + 8, x:x + width] = 0
            x += width + 8
    return Image.fromarray(page)


@pytest.fixture()
def pdf(tmp_path: Path) -> Candidate:
    blank = Image.new("L", (300, 450), 255)
    one_line = blank.copy()
    one_line.paste(0, (20, 30, 120, 38))  # one short line, 0.6 % ink: below the threshold
    pages = [_text_page(0), blank, _text_page(1), one_line, _text_page(0)]  # the last repeats the first
    path = tmp_path / "manual.pdf"
    pages[0].save(path, save_all=True, append_images=pages[1:], resolution=150)
    return Candidate("manual", "test:pdf", "1", "usr/share/doc/manual.pdf", "GPL-2", "the authors", path)


def test_picked_pages_stride_through_each_pdf():
    assert picked_pages(10, per_pdf=5) == [1, 3, 5, 7, 9]
    assert picked_pages(3, per_pdf=48) == [0, 1, 2]
    assert picked_pages(0) == []
    big = picked_pages(2415, per_pdf=48)
    assert len(big) == 47 and big[0] == 25 and all(b - a == 51 for a, b in pairwise(big))


def test_blank_and_repeated_pages_are_dropped(pdf, tmp_path):
    found = page_candidates([pdf], tmp_path / "pages", per_pdf=48)
    assert [c.file for c in found] == ["usr/share/doc/manual.pdf#page=1", "usr/share/doc/manual.pdf#page=3"]
    pdf_sha = sha256_file(pdf.path)
    for candidate, page in zip(found, (1, 3)):
        assert candidate.digest == page_digest(pdf_sha, page)
        assert (candidate.source, candidate.version, candidate.licence, candidate.copyright) == (
            "test:pdf", "1", "GPL-2", "the authors")
        with Image.open(candidate.path) as image:
            assert image.mode == "RGB"  # 2 × 3 in at 150 dpi, not downscaled (PDFium may round a pixel up)
            assert 0 <= image.width - 300 <= 1 and 0 <= image.height - 450 <= 1
            pixels = np.asarray(image)
            assert (pixels[..., 0] == pixels[..., 2]).all()  # greyscale-looking
            assert ink_fraction(image) > 0.05


def test_page_identity_does_not_depend_on_the_renderer(pdf, tmp_path):
    first = page_candidates([pdf], tmp_path / "a")
    second = page_candidates([pdf], tmp_path / "b", dpi=72)
    assert [c.digest for c in first] == [c.digest for c in second]
    assert len({page_digest("0" * 64, 1), page_digest("0" * 64, 2), page_digest("1" * 64, 1)}) == 3
