"""Typeset pages as images: a deterministic choice of pages from PDFs, rendered with PDFium at print resolution.

The documents domain of the domain-shift study is text, so pages keep their 150 dpi rendering: downscaled to
photo size, glyphs would blur into texture (the study cuts tiles at native scale). Pages are picked at a fixed
stride through each PDF, so a 2,400-page reference manual contributes about as many pages as a 40-page one,
and a page with too little ink (a section's last lines, a blank verso, a title page) is dropped, because the
tiles cut from it would be white.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
from PIL import Image

from adir_exp.corpus.photos import Candidate, sha256_file

DPI = 150
PAGES_PER_PDF = 48
MIN_INK = 0.01  # fraction of pixels darker than mid-grey; body text at 150 dpi covers 2–5 %
PAGE_RULE = (
    f"per PDF of n pages, stride s = ceil(n / {PAGES_PER_PDF}), pages s//2, s//2 + s, …; rendered in greyscale "
    f"at {DPI} dpi; dropped when fewer than {MIN_INK:.0%} of the pixels are darker than mid-grey, or when the "
    f"rendering repeats an earlier page's pixels exactly"
)


def picked_pages(count: int, per_pdf: int = PAGES_PER_PDF) -> list[int]:
    """0-based indices at a fixed stride, starting half a stride in (past the title page)."""
    stride = max(1, math.ceil(count / per_pdf))
    return list(range(stride // 2, count, stride))


def ink_fraction(image: Image.Image) -> float:
    """Share of pixels darker than mid-grey."""
    return float((np.asarray(image.convert("L")) < 128).mean())


def render_page(document: pdfium.PdfDocument, index: int, dpi: int = DPI) -> Image.Image:
    """One page as an 8-bit greyscale image at ``dpi``."""
    return document[index].render(scale=dpi / 72, grayscale=True).to_pil().convert("L")


def page_digest(pdf_sha256: str, page: int) -> str:
    """A page's identity for the hash split: the PDF's bytes and the page number, not the renderer's output."""
    return hashlib.sha256(f"{pdf_sha256}#page={page}".encode()).hexdigest()


def page_candidates(
    pdfs: Iterable[Candidate],
    out_dir: Path,
    per_pdf: int = PAGES_PER_PDF,
    min_ink: float = MIN_INK,
    dpi: int = DPI,
) -> list[Candidate]:
    """Render the picked pages of each PDF into ``out_dir`` (greyscale-looking RGB PNG) as candidates.

    A page's ``file`` is ``<file of the PDF>#page=<N>`` (1-based); its ``digest`` is :func:`page_digest`.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    out: list[Candidate] = []
    seen_pixels: set[str] = set()
    for pdf in sorted(pdfs, key=lambda c: (c.source, c.file)):
        pdf_sha256 = sha256_file(pdf.path)
        document = pdfium.PdfDocument(str(pdf.path))
        try:
            for index in picked_pages(len(document), per_pdf):
                image = render_page(document, index, dpi)
                pixels = hashlib.sha256(image.tobytes()).hexdigest()
                if ink_fraction(image) < min_ink or pixels in seen_pixels:
                    continue
                seen_pixels.add(pixels)
                page = index + 1
                name = f"{pdf.name}-p{page:04d}"
                path = out_dir / f"{name}.png"
                image.convert("RGB").save(path)
                out.append(Candidate(name, pdf.source, pdf.version, f"{pdf.file}#page={page}", pdf.licence,
                                     pdf.copyright, path, page_digest(pdf_sha256, page)))
        finally:
            document.close()
    return out
