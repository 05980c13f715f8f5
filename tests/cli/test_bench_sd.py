"""The Stable Diffusion rows of adir-bench on tiny pipelines: Table 3 (×4 SR) and Fig. 3 (editing) end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli.helpers import CHEAP_METRICS, cli, rows, run_app, stored


def tiny_sd(pipeline_dir: Path, crop: int) -> list[str]:
    """A tiny pipeline, 2 inference steps, ADIR-SD for 2 steps of 2 crops."""
    return [f"model.pipeline.path={pipeline_dir}", f"model.image_size={crop}", "model.inference.num_inference_steps=2",
            "adaptation.iterations=2", "adaptation.batch_size=2", "adaptation.lr=1e-2", "adaptation.progress=false",
            *CHEAP_METRICS]  # fmt: skip


def collection(tmp_path: Path, adaptation_image_files: list[Path], text: bool) -> list[str]:
    """A retrieval index of the two adaptation images (open_clip with random weights when text queries are needed)."""
    from adir_exp.retrieval.build import build_index
    from adir_exp.retrieval.embedding import EmbedConfig
    from adir_exp.retrieval.encoders import EfficientNetLite0Encoder

    folder = tmp_path / "collection"
    folder.mkdir()
    for path in adaptation_image_files:
        (folder / path.name).write_bytes(path.read_bytes())
    if text:
        from tests.retrieval.retrieval_helpers import tiny_open_clip_overrides

        return tiny_open_clip_overrides(folder, tmp_path / "index")
    embed = EmbedConfig(batch_size=2, num_workers=0, accelerator="cpu", devices=1, progress=False)
    build_index(folder, tmp_path / "index", EfficientNetLite0Encoder(image_size=64), embed=embed)
    return ["retrieval=knn", "retrieval/encoder=efficientnet_lite0", f"retrieval.index_dir={tmp_path / 'index'}",
            "retrieval.encoder.image_size=64",
            "retrieval.k=2"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("div2k")
    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray((rng.random((48, 40, 3)) * 255).astype(np.uint8)).save(root / f"08{i:02d}.png")
    return root


@pytest.mark.integration
def test_table3_sd_sr4_runs_bicubic_sd_and_adir_sd(
    tiny_upscaler_dir: Path, adaptation_image_files: list[Path], dataset: Path, tmp_path: Path
) -> None:
    """``adir-bench experiment=table3_sd_sr4`` itself, at 32 px (8 px inputs) instead of 1024."""
    results = tmp_path / "results"
    overrides = ["experiment=table3_sd_sr4", *tiny_sd(tiny_upscaler_dir, 32), "model.objective.lpips_weight=0",
                 *collection(tmp_path, adaptation_image_files, text=False), "benchmark.size=32",
                 f"benchmark.dataset={dataset}", f"benchmark.results_dir={results}", f"hydra.run.dir={tmp_path / 'h'}"]
    result = cli("bench", overrides, env={"OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    written = rows(results)
    assert sorted((r["method"], r["image"]) for r in written) == [
        (method, image) for method in ("adir_sd_knn", "bicubic", "sd") for image in ("0800", "0801")
    ]
    assert all(np.isfinite(r["psnr"]) for r in written)
    summary = (tmp_path / "h" / "summary.md").read_text()
    assert all(f"| {method} | 2 |" in summary for method in ("bicubic", "sd", "adir_sd_knn"))
    assert "Stable Diffusion (paper)" not in summary and "| sd | 2 |" in summary
    assert Image.open(stored(results, "0800", "adir_sd_knn")).size == (32, 32)
    assert len(list((tmp_path / "h" / "grids").glob("*.png"))) == 2


@pytest.mark.integration
def test_fig3_editing_runs_sd_and_adir_sd_inpainting_with_text_retrieval(
    tiny_inpainter_dir: Path, adaptation_image_files: list[Path], dataset: Path, tmp_path: Path
) -> None:
    """``experiment=fig3_editing`` in process (same code path as the console script, without its import cost)."""
    overrides = ["experiment=fig3_editing", *tiny_sd(tiny_inpainter_dir, 64),
                 *collection(tmp_path, adaptation_image_files, text=True), "retrieval.k=2", "benchmark.size=64",
                 f"benchmark.dataset={dataset}", f"benchmark.results_dir={tmp_path / 'results'}"]  # fmt: skip
    run_app("bench", overrides, tmp_path / "report")
    written = rows(tmp_path / "results")
    assert sorted((r["method"], r["image"]) for r in written) == [
        (method, image) for method in ("adir_sd_text", "sd") for image in ("0800", "0801")
    ]
    assert all(len(r["adaptation_images"]) == 2 for r in written if r["method"] == "adir_sd_text")
    assert "adir_sd_text" in (tmp_path / "report" / "summary.md").read_text()
    assert len(list((tmp_path / "report" / "grids").glob("*.png"))) == 2
