"""One adaptation end to end on the tiny ADM: the fit returns the reconstruction and the adapter, is seeded, and
its adapter reproduces the reconstruction when reloaded."""

from __future__ import annotations

import pytest
import torch

from adir_exp.adaptation import AdapterMetadata, LoRAFit, load_adapter, save_adapter
from adir_exp.adaptation.fit import trainer_placement
from adir_exp.adaptation.sources import SELF_IMAGE_ID, SelfImage
from adir_exp.samplers import ADIRGuidedSampler

pytestmark = pytest.mark.filterwarnings("ignore:Found .* module\\(s\\) in eval mode")


def sampler(denoiser, schedule):
    return ADIRGuidedSampler(denoiser, schedule, num_steps=3, progress=False)


def fit(tiny_prior, problem, **settings):
    adapted = tiny_prior.copy()
    images = SelfImage().collect(problem)
    options = {"iterations": 3, "batch_size": 2, "lr": 1e-3, "rank": 4, "crop_size": 32, "progress": False} | settings
    result = LoRAFit(**options)(adapted, images, problem, adapted.reconstructor(problem.physics, sampler))
    return adapted, result


def sample(prior, problem):
    return prior.reconstructor(problem.physics, sampler).sample(
        problem.image_shape, problem.measurement, generator=problem.generator())


def test_training_runs_on_the_run_device_only() -> None:
    assert trainer_placement(torch.device("cpu")) == {"accelerator": "cpu", "devices": 1}
    assert trainer_placement(torch.device("cuda")) == {"accelerator": "gpu", "devices": [0]}
    assert trainer_placement(torch.device("cuda:1")) == {"accelerator": "gpu", "devices": [1]}


def test_fit_adapts_a_copy_and_returns_estimate_adapter_settings_and_losses(tiny_prior, sr_problem) -> None:
    before = {k: v.clone() for k, v in tiny_prior.network.state_dict().items()}
    adapted, result = fit(tiny_prior, sr_problem)
    assert result.estimate.shape == sr_problem.image_shape
    assert result.lora["rank"] == 4 and result.lora["targets"]
    assert len(result.losses) == 3 and {"loss", "eps_mse", "lpips"} <= set(result.losses[0])
    assert all(torch.equal(before[k], v) for k, v in tiny_prior.network.state_dict().items())  # the original is intact
    assert (result.estimate - sample(tiny_prior, sr_problem)).abs().max() > 1e-2


def test_fit_is_repeatable_whatever_used_the_global_rng_before(tiny_prior, sr_problem) -> None:
    """The LoRA initialisation is seeded too: a benchmark's rows then do not depend on the images before."""
    _, first = fit(tiny_prior, sr_problem)
    torch.rand(1000)
    _, second = fit(tiny_prior, sr_problem)
    assert torch.equal(first.estimate, second.estimate)


def test_intermediate_reconstructions_are_kept_by_step(tiny_prior, sr_problem) -> None:
    _, result = fit(tiny_prior, sr_problem, iterations=4, reconstruct_at=[1, 3, 4, 9])
    assert sorted(result.snapshots) == [1, 3]  # the last step is the fit's own result; 9 is never reached


def test_a_snapshot_after_n_steps_is_the_n_step_fit(tiny_prior, sr_problem) -> None:
    """Prefix consistency: one long fit gives the reconstructions of every shorter one (cost/benefit curves)."""
    _, long = fit(tiny_prior, sr_problem, iterations=5, reconstruct_at=[2, 3])
    for steps in (2, 3):
        _, short = fit(tiny_prior, sr_problem, iterations=steps)
        assert torch.equal(long.snapshots[steps], short.estimate)


@pytest.mark.parametrize("merge", [False, True])
def test_saved_adapter_reproduces_the_reconstruction(tiny_prior, sr_problem, tmp_path, merge) -> None:
    """Reloaded into a fresh prior (merged or not), the adapter gives the same reconstruction."""
    adapted, result = fit(tiny_prior, sr_problem)
    metadata = AdapterMetadata("adm_tiny", "sr4", (SELF_IMAGE_ID,), 0, result.lora)
    path = save_adapter(adapted.network, tmp_path / "adapter", metadata)
    fresh = tiny_prior.copy()
    fresh.apply_adapter(path, merge=merge)
    again = sample(fresh, sr_problem)
    if merge:
        torch.testing.assert_close(again, result.estimate, rtol=0, atol=1e-3)
    else:
        assert torch.equal(again, result.estimate)
    assert load_adapter(tiny_prior.copy().network, path).image_ids == (SELF_IMAGE_ID,)


@pytest.mark.parametrize("setting", [{"iterations": 0}, {"batch_size": 0}, {"lr": 0.0}, {"rank": 0}])
def test_wrong_settings_are_refused_when_built(setting) -> None:
    with pytest.raises(ValueError, match=next(iter(setting))):
        LoRAFit(**setting)


def test_a_fit_without_a_problem_adapts_the_network_and_returns_settings_and_losses(tiny_prior, sr_problem) -> None:
    """The adapter bank's path: the same fit, nothing reconstructed."""
    adapted = tiny_prior.copy()
    settings = LoRAFit(iterations=2, batch_size=2, lr=1e-3, rank=4, crop_size=32, progress=False)
    fitted = settings.fit(adapted, SelfImage().collect(sr_problem), sr_problem.physics, sr_problem.device)
    assert fitted.lora["rank"] == 4 and len(fitted.losses) == 2
    assert any(p.abs().sum() > 0 for n, p in adapted.network.named_parameters() if "lora_B" in n)


def test_a_fit_can_start_from_a_saved_adapter_with_its_own_shape(tiny_prior, sr_problem, tmp_path) -> None:
    adapted, result = fit(tiny_prior, sr_problem)
    path = save_adapter(adapted.network, tmp_path / "adapter",
                        AdapterMetadata("adm_tiny", "sr4", (SELF_IMAGE_ID,), 0, result.lora))
    again = tiny_prior.copy()
    barely = LoRAFit(iterations=1, batch_size=2, lr=1e-9, rank=8, crop_size=32, progress=False)  # rank 8 unused
    fitted = barely.fit(again, SelfImage().collect(sr_problem), sr_problem.physics, sr_problem.device,
                        start_from=path)
    assert fitted.lora == result.lora
    saved = dict(adapted.network.named_parameters())
    for name, parameter in again.network.named_parameters():
        if "lora_" in name:  # one step at lr 1e-9: still the saved weights
            torch.testing.assert_close(parameter, saved[name], rtol=0, atol=1e-6)


def test_the_trainer_group_is_the_default_trainer_and_a_given_logger_sees_every_step(tiny_prior, sr_problem,
                                                                                       tmp_path) -> None:
    """conf/trainer/default.yaml builds the Trainer LoRAFit uses without it; a factory given in its place builds
    each fit's Trainer with the fit's steps, and a logger handed to the fit receives the loss of every step."""
    import csv

    from hydra.utils import instantiate
    from lightning.pytorch.loggers import CSVLogger
    from omegaconf import OmegaConf

    from adir_exp.adaptation.fit import QUIET_TRAINER
    from adir_exp.cli.config import CONF_DIR

    configured = instantiate(OmegaConf.load(CONF_DIR / "trainer" / "default.yaml"))
    assert (configured.func, configured.keywords) == (QUIET_TRAINER.func, QUIET_TRAINER.keywords)
    built = []

    def factory(**settings):
        built.append(settings)
        return configured(**settings)

    logger = CSVLogger(tmp_path, name="fit", version="")
    settings = {"iterations": 3, "batch_size": 2, "rank": 4, "crop_size": 32, "progress": False, "trainer": factory}
    fitted = LoRAFit(**settings).fit(tiny_prior.copy(), SelfImage().collect(sr_problem), sr_problem.physics,
                                      sr_problem.device, logger=logger)
    assert [b["max_steps"] for b in built] == [3] and built[0]["logger"] is logger
    with open(tmp_path / "fit" / "metrics.csv") as handle:
        logged = [float(row["adaptation/loss"]) for row in csv.DictReader(handle) if row["adaptation/loss"]]
    assert logged == [terms["loss"] for terms in fitted.losses]
