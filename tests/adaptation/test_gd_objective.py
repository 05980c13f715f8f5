"""GDObjective: the DDPM ε-loss on the first 3 output channels plus 0.1·LPIPS between x̂0 and the clean crop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from adir_exp.adaptation import GDObjective
from adir_exp.models import GaussianPriorDenoiser
from adir_exp.weights import MissingWeightsError

CROPS = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_loss_is_eps_mse_plus_weighted_lpips_of_clipped_x0_estimate(denoiser, schedule, random_lpips) -> None:
    objective = GDObjective(denoiser, schedule, lpips_weight=0.1, perceptual=random_lpips)
    with torch.no_grad():
        terms = objective.loss(CROPS, generator=torch.Generator().manual_seed(7))
        # the same draws by hand: one t for the batch, then ε
        generator = torch.Generator().manual_seed(7)
        t = torch.randint(0, 1000, (1,), generator=generator)
        noise = torch.randn(CROPS.shape, generator=generator)
        abar = schedule.alphas_cumprod[t].float()
        x_t = abar.sqrt() * CROPS + (1 - abar).sqrt() * noise
        out = denoiser.unet(x_t, t.expand(2)).sample
        assert out.shape[1] == 6  # learned variance: [ε, v]
        eps = out[:, :3]
        x0_hat = ((x_t - (1 - abar).sqrt() * eps) / abar.sqrt()).clamp(-1, 1)
        lpips = random_lpips(x0_hat, CROPS).mean()
    torch.testing.assert_close(terms["eps_mse"], F.mse_loss(eps, noise))
    torch.testing.assert_close(terms["lpips"], lpips)
    torch.testing.assert_close(terms["loss"], terms["eps_mse"] + 0.1 * lpips)


def test_without_lpips_weight_the_loss_is_the_eps_mse_and_needs_no_weights(denoiser, schedule) -> None:
    objective = GDObjective(denoiser, schedule, lpips_weight=0.0)
    assert objective.perceptual is None
    terms = objective.loss(CROPS, generator=torch.Generator().manual_seed(0))
    assert set(terms) == {"loss", "eps_mse"}
    assert terms["loss"] is terms["eps_mse"]


def test_same_generator_seed_same_loss_and_t_varies_between_batches(denoiser, schedule, random_lpips) -> None:
    objective = GDObjective(denoiser, schedule, perceptual=random_lpips)
    with torch.no_grad():
        first = objective.loss(CROPS, torch.Generator().manual_seed(3))["loss"]
        again = objective.loss(CROPS, torch.Generator().manual_seed(3))["loss"]
        other = objective.loss(CROPS, torch.Generator().manual_seed(4))["loss"]
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_lpips_stays_frozen_and_in_eval_mode(denoiser, schedule, random_lpips) -> None:
    objective = GDObjective(denoiser, schedule, perceptual=random_lpips).train()
    assert objective.denoiser.training
    assert not objective.perceptual.training
    assert not any(m.training for m in objective.perceptual.modules())  # lpips' dropout stays off
    assert not any(p.requires_grad for p in objective.perceptual.parameters())
    assert objective.network is denoiser.unet


def test_rejects_a_denoiser_without_a_unet(schedule) -> None:
    with pytest.raises(TypeError, match="UNetDenoiser"):
        analytic = GaussianPriorDenoiser(torch.zeros(3, 1, 1), torch.ones(3, 1, 1), schedule)
        GDObjective(analytic, schedule, lpips_weight=0.0)


def test_missing_lpips_backbone_names_the_file(denoiser, schedule, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="alexnet"):
        GDObjective(denoiser, schedule)
