"""Every table experiment runs end to end on tiny stand-ins and its summary carries the paper's numbers, with
Table 1's settings in the composed config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from adir_exp.evaluation.results import PAPER_RESULTS
from tests.cli.helpers import CHEAP_METRICS, compose_app, run_app

PAPER = yaml.safe_load(PAPER_RESULTS.read_text())
GD_TABLES = ["table2_gd_sr4", "table2_gd_sr8", "table4_deblur_box256", "table4_deblur_box512",
             "table4_deblur_gauss256", "table5_colorization"]  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("div2k")
    Image.fromarray((np.random.default_rng(0).random((64, 72, 3)) * 255).astype(np.uint8)).save(root / "0801.png")
    return root


def tiny(experiment: str, dataset: Path, results: Path) -> list[str]:
    return [f"experiment={experiment}", *CHEAP_METRICS, f"benchmark.dataset={dataset}",
            "benchmark.size=32", f"benchmark.results_dir={results}"]  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize("experiment", GD_TABLES)
def test_gd_table_summary_carries_the_papers_column(experiment, dataset, tmp_path) -> None:
    run_app("bench", [*tiny(experiment, dataset, tmp_path / "r"), "model=adm_tiny", "method=[gd,ddrm]",
                      "sampler.num_steps=2", "sampler.progress=false", "methods.ddrm.sampler.num_steps=2"], tmp_path / "report")  # fmt: skip
    summary = (tmp_path / "report" / "summary.md").read_text()
    published = PAPER[experiment]
    for method in ("gd", "ddrm"):
        values = (published["methods"].get(method) or {})
        line = next(line for line in summary.splitlines() if line.startswith(f"| {method} | 1 |"))
        assert all(f"| {value} |" in line for value in values.values() if value is not None), (method, line)
    first_baseline = next(iter(published.get("paper_only") or {}), None)
    if first_baseline:
        assert f"| {first_baseline} (paper) | 0 |" in summary


@pytest.mark.integration
def test_sd_table_summary_carries_the_papers_column(dataset, tiny_upscaler_dir, tmp_path) -> None:
    run_app("bench", [*tiny("table3_sd_sr4", dataset, tmp_path / "r"), f"model.pipeline.path={tiny_upscaler_dir}",
                      "model.inference.num_inference_steps=2", "method=[sd]"], tmp_path / "report")  # fmt: skip
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "| sd | 1 |" in summary and "| 0.331 |" in summary and "| 69.18 |" in summary
    assert "| IPT (paper) | 0 |" in summary


@pytest.mark.parametrize("experiment", GD_TABLES)
def test_gd_tables_compose_table_1(experiment, tmp_path) -> None:
    cfg = compose_app("bench", [f"experiment={experiment}"], tmp_path)
    assert (cfg.sampler.num_steps, cfg.sampler.guidance_scale, cfg.retrieval.k) == (1000, 10.0, 20)
    assert (cfg.adaptation.iterations, cfg.adaptation.lr, cfg.adaptation.batch_size) == (400, 1e-4, 6)
    assert cfg.retrieval.encoder.model_name == "ViT-L-14" and cfg.model.name == "gd256_uncond"
    assert cfg.benchmark.first_n == 50 and cfg.benchmark.preprocess == "center_crop"


@pytest.mark.parametrize("experiment", GD_TABLES)
def test_gd_tables_adapt_every_convolution_and_run_the_baselines_as_their_official_code(experiment, tmp_path):
    """Sec. 4's "all the convolution layers" (ADM's attention projections are 1×1 convolutions); DPS with the
    official scale 0.3 (ζ = 0.15) on the clamped x̂0 over 1000 steps; DDRM on the official 0, 50, …, 950."""
    cfg = compose_app("bench", [f"experiment={experiment}"], tmp_path)
    assert cfg.adaptation.targets == "adm_conv"
    dps = cfg.methods.dps.sampler
    assert (dps.step_size, dps.clip_x0_for_guidance, dps.num_steps) == (0.15, True, 1000)
    if "_target_" in cfg.methods.ddrm:  # a row of this table
        assert cfg.methods.ddrm.sampler.num_steps == "ddim20"


def test_sd_table_composes_table_1(tmp_path) -> None:
    cfg = compose_app("bench", ["experiment=table3_sd_sr4"], tmp_path)
    assert (cfg.model.inference.num_inference_steps, cfg.retrieval.k, cfg.adaptation.iterations) == (500, 50, 400)
    assert not cfg.sampler and cfg.model.objective.timesteps == "batch"


@pytest.mark.integration
def test_baselines_we_run_sit_beside_the_papers_values(dataset, isolated_home, tmp_path) -> None:
    """A user's SwinIR checkpoint (here a tiny random one) and DeepRED become the paper's SwinIR and DeepRED rows."""
    pytest.importorskip("spandrel")
    from spandrel.architectures.SwinIR import SwinIR

    from adir_exp.weights import entry

    network = SwinIR(img_size=16, embed_dim=12, depths=[1], num_heads=[2], window_size=4, mlp_ratio=2, upscale=4,
                     upsampler="pixelshuffle")  # fmt: skip
    path = entry("swinir-sr4").path
    path.parent.mkdir(parents=True)
    torch.save({"params": network.state_dict()}, path)  # as SwinIR's releases
    deepred = ["methods.deepred.iterations=2", "methods.deepred.channels=4", "methods.deepred.input_depth=2",
               "methods.deepred.scales=3"]
    run_app("bench", [*tiny("table2_gd_sr4", dataset, tmp_path / "r"), "method=[swinir,deepred]", *deepred],
            tmp_path / "report")  # fmt: skip
    summary = (tmp_path / "report" / "summary.md").read_text()
    published = PAPER["table2_gd_sr4"]["paper_only"]
    for method, row in (("swinir", published["SwinIR"]), ("deepred", published["DeepRED"])):
        line = next(line for line in summary.splitlines() if line.startswith(f"| {method} | 1 |"))
        assert all(f"| {value} |" in line for value in row.values()), (method, line)
    assert "SwinIR (paper)" not in summary and "DeepRED (paper)" not in summary and "| IPT (paper) | 0 |" in summary
