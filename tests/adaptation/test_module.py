"""LoRAAdaptation: the loss goes down, only adapter tensors move, runs repeat exactly."""

from __future__ import annotations

import warnings

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


def build(random_lpips, lr: float = 1e-4, seed: int = 0, **options) -> LoRAAdaptation:
    objective = GDObjective(UNetDenoiser(random_adm(TINY_ADM, seed=0)), NoiseSchedule(), perceptual=random_lpips)
    return LoRAAdaptation(objective, lr=lr, seed=seed, **options)


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


CROPS = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_bf16_runs_the_network_in_bf16_and_keeps_loss_adapters_and_adam_in_fp32(random_lpips) -> None:
    reference, module = build(random_lpips), build(random_lpips, precision="bf16")
    seen = []
    module.objective.network.conv_in.register_forward_hook(lambda mod, inputs, out: seen.append(out.dtype))
    losses = {}
    for name, candidate in (("fp32", reference), ("bf16", module)):
        candidate.on_fit_start()
        optimizer = candidate.configure_optimizers()
        with warnings.catch_warnings():  # training_step logs outside a Trainer
            warnings.simplefilter("ignore")
            losses[name] = candidate.training_step(CROPS, 0)
        candidate.backward(losses[name])
        optimizer.step()
    assert seen == [torch.bfloat16]
    assert losses["bf16"].dtype == torch.float32
    assert abs(losses["bf16"].item() - losses["fp32"].item()) < 0.05 * losses["fp32"].item()
    adapters = lora_parameters(module.objective.network)
    assert {p.dtype for p in adapters} == {p.grad.dtype for p in adapters} == {torch.float32}
    assert {state["exp_avg"].dtype for state in optimizer.state.values()} == {torch.float32}


def test_tf32_holds_in_backward_too_and_is_restored_after(random_lpips) -> None:
    module = build(random_lpips, precision="tf32")
    module.on_fit_start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = module.training_step(CROPS, 0)
    seen = []
    probe = torch.zeros((), requires_grad=True)
    probe.register_hook(lambda grad: seen.append(torch.backends.cudnn.conv.fp32_precision))
    before = torch.backends.cudnn.conv.fp32_precision
    module.backward(loss + 0 * probe)
    assert seen == ["tf32"]
    assert torch.backends.cudnn.conv.fp32_precision == before


def test_channels_last_and_peft_layers_give_the_default_gradients() -> None:
    """float64, ε-loss: NHWC and peft's unfused layers compute the same adapter gradients as the default."""

    def adapter_gradients(**options) -> list[torch.Tensor]:
        objective = GDObjective(UNetDenoiser(random_adm(TINY_ADM, seed=0)), NoiseSchedule(), lpips_weight=0.0)
        module = LoRAAdaptation(objective.double(), **options)
        with torch.no_grad():
            for name, parameter in module.objective.network.named_parameters():
                if "lora_B" in name:
                    parameter.fill_(0.01)
        module.objective.loss(CROPS.double(), torch.Generator().manual_seed(3))["loss"].backward()
        return [p.grad for p in lora_parameters(module.objective.network)]

    default = adapter_gradients()
    for options in ({"channels_last": True}, {"fused": False}):
        for expected, got in zip(default, adapter_gradients(**options), strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12, msg=str(options))
