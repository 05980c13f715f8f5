"""LoRAAdaptation: the loss goes down, only adapter tensors move, runs repeat exactly."""

from __future__ import annotations

import pytest
import torch
from lightning import Trainer

from adir_exp.adaptation import AdaptationDataModule, GDObjective, LoRAAdaptation
from adir_exp.adaptation.lora import lora_parameters
from adir_exp.diffusion import NoiseSchedule
from adir_exp.models import UNetDenoiser, random_adm
from tests.adaptation.conftest import TINY_ADM

# the frozen LPIPS stays in eval mode on purpose
pytestmark = pytest.mark.filterwarnings("ignore:Found .* module\\(s\\) in eval mode")


def fit(module: LoRAAdaptation, data: AdaptationDataModule, steps: int) -> None:
    trainer = Trainer(
        max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", devices=1,
    )
    trainer.fit(module, datamodule=data)


def fixed_draw_loss(objective: GDObjective, crops: torch.Tensor) -> float:
    """The loss averaged over 8 fixed (t, ε) draws on fixed crops."""
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        return float(torch.stack([objective.loss(crops, generator)["loss"] for _ in range(8)]).mean())


def build(random_lpips, lr: float = 1e-4, seed: int = 0, gradient_checkpointing: bool = False) -> LoRAAdaptation:
    objective = GDObjective(UNetDenoiser(random_adm(TINY_ADM, seed=0)), NoiseSchedule(), perceptual=random_lpips)
    return LoRAAdaptation(objective, lr=lr, seed=seed, gradient_checkpointing=gradient_checkpointing)


@pytest.fixture(scope="module")
def fitted(random_lpips, photo):
    """30 iterations, batch 2, 32×32 crops of one photo; lr 1e-3 (10× the default) for a clear change."""
    module = build(random_lpips, lr=1e-3)
    data = AdaptationDataModule([photo], crop_size=32, batch_size=2, iterations=30, expected=1)
    crops = torch.cat([data.dataset[0], data.dataset[1]])
    network = module.objective.network
    base_before = {n: p.detach().clone() for n, p in network.named_parameters() if "lora_" not in n}
    lora_before = {n: p.detach().clone() for n, p in network.named_parameters() if "lora_" in n}
    loss_before = fixed_draw_loss(module.objective, crops)
    fit(module, data, steps=30)
    module.objective.eval()
    return module, base_before, lora_before, loss_before, fixed_draw_loss(module.objective, crops)


def test_adaptation_lowers_the_loss_on_fixed_draws(fitted) -> None:
    _, _, _, before, after = fitted
    assert after < 0.9 * before, (before, after)


def test_base_weights_stay_bitwise_unchanged(fitted) -> None:
    module, base_before, _, _, _ = fitted
    base_after = {n: p for n, p in module.objective.network.named_parameters() if "lora_" not in n}
    assert base_after.keys() == base_before.keys()
    assert all(torch.equal(base_after[n], base_before[n]) for n in base_before)
    assert not any(p.requires_grad for n, p in module.objective.named_parameters() if "lora_" not in n)


def test_every_adapter_moved(fitted) -> None:
    module, _, lora_before, _, _ = fitted
    lora_after = {n: p for n, p in module.objective.network.named_parameters() if "lora_" in n}
    changed = {n for n in lora_before if not torch.equal(lora_after[n], lora_before[n])}
    assert {n for n in lora_before if "lora_B" in n} <= changed  # B starts at 0: every adapter was trained


def test_optimizer_holds_only_the_adapters(random_lpips) -> None:
    module = build(random_lpips)
    optimizer = module.configure_optimizers()
    (group,) = optimizer.param_groups
    assert {id(p) for p in group["params"]} == {id(p) for p in lora_parameters(module.objective.network)}
    assert group["lr"] == 1e-4
    assert module.lora_config == {"rank": 16, "alpha": 8.0, "dropout": 0.0, "targets": module.adapted_modules}


def test_same_seed_same_adapters(random_lpips, photo) -> None:
    def run(seed: int) -> list[torch.Tensor]:
        module = build(random_lpips, seed=seed)
        fit(module, AdaptationDataModule([photo], crop_size=32, batch_size=2, iterations=3, expected=1), steps=3)
        return [p.detach().clone() for p in lora_parameters(module.objective.network)]

    first, again, other = run(0), run(0), run(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_gradient_checkpointing_recomputes_blocks_and_gives_the_same_gradients(random_lpips) -> None:
    crops = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def adapter_gradients(checkpointing: bool) -> list[torch.Tensor]:
        module = build(random_lpips, gradient_checkpointing=checkpointing)
        block, calls = module.objective.network.down_blocks[0].resnets[0], []
        forward = block.forward  # counted by wrapping: torch's recomputation skips forward hooks
        block.forward = lambda *args, **kwargs: calls.append(1) or forward(*args, **kwargs)
        with torch.no_grad():
            for name, parameter in module.objective.network.named_parameters():
                if "lora_B" in name:
                    parameter.fill_(0.01)
        module.objective.train()
        module.objective.loss(crops, torch.Generator().manual_seed(3))["loss"].backward()
        assert len(calls) == (2 if checkpointing else 1)  # forward, and again during backward
        return [p.grad for p in lora_parameters(module.objective.network)]

    for plain, checkpointed in zip(adapter_gradients(False), adapter_gradients(True)):
        torch.testing.assert_close(checkpointed, plain, rtol=1e-4, atol=1e-6)
