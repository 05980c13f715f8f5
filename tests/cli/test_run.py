"""``adir-run`` end to end on the tiny ADM, its refusals, and that it shares adir-bench's measurement path."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from adir_exp.cli.config import ConfigError
from adir_exp.data.images import ASSET_IMAGE, load_image
from tests.cli.helpers import (
    CHEAP_METRICS,
    cli,
    offline_wandb_runs,
    rows,
    run_app,
    stored,
)

FAST = ["image_size=32", "sampler.num_steps=5", "sampler.progress=false", *CHEAP_METRICS]


@pytest.mark.integration
def test_adir_run_writes_outputs_metrics_and_the_summary_last(tmp_path) -> None:
    out = tmp_path / "run"
    result = cli("run", [*FAST, f"hydra.run.dir={out}"])
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("ground_truth", "measurement", "gd"):
        assert stored(out, "astronaut_256", name).is_file()
    assert (out / "grids" / "astronaut_256.png").is_file()
    assert json.loads((out / "metrics.json").read_text()).keys() == {"gd"}
    assert "| gd | 1 |" in result.stdout and result.stdout.rstrip().splitlines()[-1].startswith("grids")


@pytest.mark.integration
def test_adir_run_logs_one_finished_offline_wandb_run(tmp_path) -> None:
    out = tmp_path / "run"
    result = cli("run", [*FAST, "logger=wandb", f"hydra.run.dir={out}"], env={"WANDB_MODE": None})
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list((out / "wandb").glob("offline-run-*"))) == 1
    (run,) = offline_wandb_runs(out)
    assert (run.group, run.job_type, run.exit_code) == ("adm_tiny_sr4", "run", 0)  # the experiment; finished
    assert "image_size=32" in run.name and "sampler.num_steps=5" in run.name and "logger" not in run.name
    assert run.config["image_size"] == 32 and run.config["methods"]["gd"]["sampler"]["num_steps"] == 5
    assert run.logged["gd/psnr_mean"] == pytest.approx(json.loads((out / "metrics.json").read_text())["gd"]["psnr"])
    assert run.logged["grids/count"] == 1 and run.logged["summary/_type"] == "table-file"


@pytest.mark.integration
@pytest.mark.parametrize("online", [{"WANDB_MODE": "online"}, {"logger.offline": "false"}], ids=lambda o: next(iter(o)))
def test_online_without_credentials_logs_offline_with_one_warning(online, tmp_path) -> None:
    """No API key anywhere (an empty home): no prompt, no network, no lost result, the job logs offline; the
    timeout catches a hang."""
    home, out = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    env = {"WANDB_API_KEY": None, "WANDB_IDENTITY_TOKEN_FILE": None, "NETRC": None, "HOME": str(home),
           "WANDB_CONFIG_DIR": str(home / ".config" / "wandb"), "WANDB_MODE": online.get("WANDB_MODE")}
    overrides = [f"{key}={value}" for key, value in online.items() if key.startswith("logger.")]
    result = cli("run", [*FAST, "logger=wandb", *overrides, f"hydra.run.dir={out}"], env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if "W&B: logging offline" in line]
    assert len(warnings) == 1 and "no API key" in warnings[0] and "wandb sync" in warnings[0], warnings
    assert json.loads((out / "metrics.json").read_text()).keys() == {"gd"} and (out / "summary.md").is_file()
    (run,) = offline_wandb_runs(out)
    assert run.exit_code == 0 and "gd/psnr_mean" in run.logged
    assert not (home / ".netrc").exists()  # nothing written into the user's credentials


@pytest.mark.integration
def test_adir_run_reports_a_missing_gd_checkpoint_in_one_line(tmp_path) -> None:
    result = cli("run", ["model=gd256_uncond", f"hydra.run.dir={tmp_path}"], env={"ADIR_WEIGHTS": str(tmp_path)})
    assert result.returncode == 2
    assert "256x256_diffusion_uncond.pt" in result.stderr and "never downloads" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("override", "key"),
    [("sampler.num_steps=0", "sampler.num_steps"), ("sampler.num_steps=-5", "sampler.num_steps"),
     ("sampler.guidance_scale=abc", "sampler.guidance_scale"), ("adaptation.lr=0", "adaptation.lr"),
     ("image_size=0", "image_size"), ("task.physics.noise.sigma=-1", "task.physics.noise.sigma")],
)  # fmt: skip
def test_wrong_values_are_refused_before_any_work_naming_the_key(override, key, tmp_path) -> None:
    with pytest.raises(ConfigError, match=rf"{key}="):
        run_app("run", [*FAST, override], tmp_path)
    assert not list(tmp_path.iterdir())  # nothing was computed or written


def test_a_missing_image_is_refused_before_the_model_is_built(tmp_path) -> None:
    with pytest.raises(ConfigError, match="image='nowhere.png'"):
        run_app("run", [*FAST, "image=nowhere.png", "model=gd256_uncond"], tmp_path)


def test_retrieval_methods_without_retrieval_are_refused_by_name(tmp_path) -> None:
    with pytest.raises(ConfigError, match="adir_random.*retrieval=knn"):
        run_app("run", [*FAST, "method=adir_random"], tmp_path)


def test_a_sampler_method_on_a_stable_diffusion_prior_says_what_to_select(tiny_upscaler_dir, tmp_path) -> None:
    with pytest.raises(ConfigError, match="method=sd"):
        run_app("run", [*FAST, "model=sd_x4", f"model.pipeline.path={tiny_upscaler_dir}"], tmp_path)


@pytest.mark.integration
def test_same_image_task_and_seed_give_bitwise_equal_y_and_reconstruction_in_run_and_bench(tmp_path) -> None:
    """adir-run is one image of adir-bench: the same y and the same reconstruction, byte for byte."""
    settings = ["sampler.num_steps=4", "sampler.progress=false", "task=deblur_box", "seed=3", *CHEAP_METRICS]
    run_app("run", [*settings, "image_size=32", "preprocess=resize_crop"], tmp_path / "run")
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    shutil.copy(ASSET_IMAGE, dataset / ASSET_IMAGE.name)
    run_app("bench", [*settings, "benchmark.size=32", "benchmark.preprocess=resize_crop", "method=[gd]",
                      f"benchmark.dataset={dataset}", f"benchmark.results_dir={tmp_path / 'bench'}"],
            tmp_path / "bench_report")  # fmt: skip
    image = ASSET_IMAGE.stem
    for name in ("measurement", "gd"):
        single, table = stored(tmp_path / "run", image, name), stored(tmp_path / "bench", image, name)
        assert single.read_bytes() == table.read_bytes(), name
    assert torch.equal(load_image(stored(tmp_path / "run", image, "gd")), load_image(stored(tmp_path / "bench", image, "gd")))
    (single_row,), (table_row,) = rows(tmp_path / "run"), rows(tmp_path / "bench")
    assert single_row["psnr"] == table_row["psnr"]


def test_settings_of_unselected_methods_are_ignored(tmp_path) -> None:
    """Experiments pre-set options of methods a run may leave out (the domain-shift study's oracle, DPS's ζ)."""
    scores = run_app("run", [*FAST, "+methods.dps.sampler.step_size=8.0", "+methods.adir_oracle.source.within=x"],
                     tmp_path)
    assert list(scores) == ["gd"]
