"""The leakage guard: a benchmark's ground truth (or its source) must never be among the adaptation images.

A test tile is a 96-px crop of a larger source image; its embedding is far from that of its own whole source
(cosine 0.24–0.86 in the domain-shift study), so a whole-image similarity test cannot see that a candidate *is*
the source. Three checks, any of which drops a candidate:

1. **Source identity** (given the content hash of the benchmark image's file, as result rows record it): the
   candidate file has the same content, or a study manifest (``manifest``, e.g. the domain-shift study's
   ``manifest.json``) puts both files in the same source group (one mosaic, one PDF, one package).
2. **Patch-level similarity** (:func:`best_match`): the tile is searched inside the candidate at every scale of
   ``scales`` (candidate pixels per tile pixel) by normalised cross-correlation (NCC) of luminance; where that
   finds a likely place, a finer search around it scores the match on fine detail (luminance minus its Gaussian
   blur). A detail NCC ≥ ``patch_threshold`` means the candidate contains the tile (a copy, a rescaled crop). The
   second stage is what makes it specific: on smooth tiles plain NCC reaches 0.92–0.98 against unrelated images
   (a gradient matches any gradient), detail NCC does not.
3. **Whole-image similarity**: the candidate's embedding has cosine ≥ ``threshold`` with the tile's (a near-copy of
   a whole ground truth, the check of full-image benchmarks).

The checks run on the candidates a query would return, so their cost is K images per query.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
import torch.nn.functional as F

from adir_exp.weights.digest import file_sha256

TEMPLATE_SIDE = 32  # the coarse search matches the tile at this size: cheap at every scale
DETAIL_SIDE = 48  # the fine search: more detail, in a small window only
DETAIL_SIGMA = 2.0  # px at DETAIL_SIDE: detail = luminance − Gaussian blur of this width
COARSE_GATE = 0.85  # plain NCC below this: the candidate does not contain the tile (a copy scores ≥ 0.98)
FINE_STEPS = 4  # the fine search tries the coarse scale × 2^(k / (4 · per octave)), |k| ≤ FINE_STEPS
WINDOW = 4  # px around the coarse position (at DETAIL_SIDE scale) searched by the fine stage
MIN_CONTRAST = 1e-3  # windows flatter than this (std of luminance) never match


@dataclass(frozen=True)
class Exclusion:
    """Why the guard dropped a candidate: ``reason`` is ``source``, ``patch`` or ``embedding``; ``score`` the
    normalised cross-correlation or cosine that tripped it (1.0 for a source match)."""

    reason: str
    score: float


def content_digest(path: str | Path) -> str:
    """The first 16 hex digits of a file's SHA-256: how result rows identify the image they were computed from."""
    return file_sha256(path)[:16]


def luminance(image: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) or (C, H, W) in [0, 1] → (H, W) luma (BT.601), float64 for the correlation sums."""
    image = image[0] if image.dim() == 4 else image
    if image.shape[0] == 1:
        return image[0].double()
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)[:, None, None]
    return (image[:3].double() * weights).sum(0)


def best_match(tile: torch.Tensor, image: torch.Tensor, scales: Sequence[float]) -> float:
    """How surely ``image`` contains ``tile`` at one of ``scales`` (candidate pixels per tile pixel): the detail NCC
    of the best place the coarse search finds (≈ 1 for a copy; 0 where the coarse search finds no likely place or
    the tile is flat)."""
    tile_luma, image_luma = luminance(tile), luminance(image)
    side = TEMPLATE_SIDE / max(tile_luma.shape)
    template = _normalised(_resized(tile_luma, side))
    if template is None:
        return 0.0  # a flat tile matches everything: nothing to say
    coarse, where = 0.0, None
    for scale in scales:
        candidate = _resized(image_luma, side / scale)
        if candidate.shape[0] < template.shape[0] or candidate.shape[1] < template.shape[1]:
            continue
        scores = _correlation(candidate, template)
        best = float(scores.max())
        if best > coarse:
            index = int(scores.argmax())
            coarse, where = best, (scale, index // scores.shape[1], index % scores.shape[1])
    if where is None or coarse < COARSE_GATE:
        return 0.0
    return _detail_match(tile_luma, image_luma, *where, scales)


def _detail_match(tile_luma: torch.Tensor, image_luma: torch.Tensor, scale: float, row: int, col: int,
                  scales: Sequence[float]) -> float:
    """The best detail NCC at scales around ``scale`` and positions around the coarse hit (``row``, ``col`` at
    TEMPLATE_SIDE scale)."""
    side = DETAIL_SIDE / max(tile_luma.shape)
    template = _normalised(_detail(_resized(tile_luma, side)))
    if template is None:
        return 0.0
    step = (scales[1] / scales[0]) ** (1 / 4) if len(scales) > 1 else 2 ** (1 / 32)
    h, w = template.shape
    best = 0.0
    for k in range(-FINE_STEPS, FINE_STEPS + 1):
        fine = scale * step**k
        factor = side / fine
        # the coarse hit's top-left corner in this resizing of the candidate
        top = round(row * (DETAIL_SIDE / TEMPLATE_SIDE) * scale / fine)
        left = round(col * (DETAIL_SIDE / TEMPLATE_SIDE) * scale / fine)
        rows, cols = round(image_luma.shape[0] * factor), round(image_luma.shape[1] * factor)
        r0, c0 = max(0, top - WINDOW), max(0, left - WINDOW)
        r1, c1 = min(rows, top + h + WINDOW), min(cols, left + w + WINDOW)
        if r1 - r0 < h or c1 - c0 < w:
            continue
        candidate = _detail(_resized(image_luma, factor))[r0:r1, c0:c1]
        best = max(best, float(_correlation(candidate, template).max()))
    return best


def _normalised(template: torch.Tensor) -> torch.Tensor | None:
    """Zero mean, unit norm; None for a flat template."""
    template = template - template.mean()
    norm = template.norm()
    if norm / math.sqrt(template.numel()) < MIN_CONTRAST:
        return None
    return template / norm


def _detail(luma: torch.Tensor) -> torch.Tensor:
    """Luminance minus its Gaussian blur (σ = DETAIL_SIGMA px): the fine structure a copy shares and a smooth
    gradient lacks."""
    radius = int(3 * DETAIL_SIGMA)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(offsets**2) / (2 * DETAIL_SIGMA**2))
    kernel = kernel / kernel.sum()
    padded = F.pad(luma[None, None], (radius,) * 4, mode="replicate")
    blurred = F.conv2d(F.conv2d(padded, kernel.view(1, 1, 1, -1)), kernel.view(1, 1, -1, 1))[0, 0]
    return luma - blurred


def _resized(luma: torch.Tensor, factor: float) -> torch.Tensor:
    size = (max(1, round(luma.shape[0] * factor)), max(1, round(luma.shape[1] * factor)))
    return F.interpolate(luma[None, None].float(), size=size, mode="bilinear", antialias=True,
                         align_corners=False)[0, 0].double()


def _correlation(image: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """Normalised cross-correlation of a zero-mean unit-norm ``template`` at every valid position of ``image``
    (FFT correlation; window energies from integral images)."""
    h, w = template.shape
    rows, cols = image.shape
    spectrum = torch.fft.rfft2(image) * torch.fft.rfft2(template, s=(rows, cols)).conj()
    numerator = torch.fft.irfft2(spectrum, s=(rows, cols))[: rows - h + 1, : cols - w + 1]
    integral = F.pad(image, (1, 0, 1, 0)).cumsum(0).cumsum(1)
    squares = F.pad(image * image, (1, 0, 1, 0)).cumsum(0).cumsum(1)

    def window(table: torch.Tensor) -> torch.Tensor:
        return table[h:, w:] - table[:-h, w:] - table[h:, :-w] + table[:-h, :-w]

    count = h * w
    energy = (window(squares) - window(integral) ** 2 / count).clamp_min(0)
    flat = energy < (MIN_CONTRAST**2) * count
    return torch.where(flat, torch.zeros_like(numerator), numerator / energy.sqrt().clamp_min(1e-12))


@dataclass(frozen=True)
class LeakageGuard:
    """Drop collection images that are (or contain) the benchmark's ground truth or share its source.

    ``threshold``: cosine similarity of embeddings at or above which a candidate is a near-copy (0.95 keeps
    merely similar images: ImageNet-feature cosines between different photos stay well below 0.6).
    ``patch_threshold``: detail NCC (:func:`best_match`) at or above which the candidate contains the tile;
    ``scales`` = (smallest, largest, per octave) candidate pixels per tile pixel searched. ``manifest``: a study
    manifest (``images[].path`` relative to it, ``group``) whose groups say which files share a source.
    """

    enabled: bool = True
    threshold: float = 0.95
    patch_threshold: float = 0.6
    scales: tuple[float, float, int] = (0.5, 2.0, 8)
    manifest: str | None = None
    _groups: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", tuple(self.scales))  # a config's list compares equal to the default

    @cached_property
    def scale_grid(self) -> list[float]:
        low, high, per_octave = self.scales
        steps = round(math.log2(high / low) * per_octave)
        return [low * 2 ** (i / per_octave) for i in range(steps + 1)]

    def group_of(self, digest: str) -> str | None:
        """The manifest's source group of the file with this content digest (None without a manifest, or for a
        file it does not list)."""
        if self.manifest is None:
            return None
        if not self._groups:
            root = Path(self.manifest).parent
            for item in json.loads(Path(self.manifest).read_text(encoding="utf-8"))["images"]:
                path = root / item.get("path", "")
                if item.get("path") and item.get("group") and path.is_file():
                    self._groups[content_digest(path)] = item["group"]
        return self._groups.get(digest)

    def same_source(self, candidate: str | Path, source_digest: str) -> bool:
        """The candidate file is the source's content, or the manifest puts both in one group."""
        candidate = Path(candidate)
        if not candidate.is_file():  # a tar member: only the pixels can tell
            return False
        digest = content_digest(candidate)
        if digest == source_digest:
            return True
        group = self.group_of(source_digest)
        return group is not None and group == self.group_of(digest)

    def exclusion(
        self,
        candidate_path: str,
        candidate_image: torch.Tensor,
        ground_truth: torch.Tensor,
        embedding_similarity: float,
        source_digest: str | None = None,
    ) -> Exclusion | None:
        """Why ``candidate`` must not be used for ``ground_truth`` (None: it may); ``source_digest``: the
        :func:`content_digest` of the file the ground truth was cut from, when known."""
        if source_digest is not None and self.same_source(candidate_path, source_digest):
            return Exclusion("source", 1.0)
        if embedding_similarity >= self.threshold:
            return Exclusion("embedding", float(embedding_similarity))
        score = best_match(ground_truth, candidate_image, self.scale_grid)
        if score >= self.patch_threshold:
            return Exclusion("patch", score)
        return None

