"""Time per image at Table 1 settings, per speed option: 400 LoRA adaptation iterations + 1000 guided steps.

The paper's GD prior (GD-256 ADM, conf/model/gd256_uncond.yaml's flags) with random weights. For every variant
this measures a few adaptation iterations (batch 6 of 256², ε-loss + 0.1·LPIPS, rank-16 LoRA on every Conv2d,
Adam) and a few ADIR-guided sampler steps (1×3×512², SR ×4) after warm-up, and EXTRAPOLATES the medians to 400
iterations and 1000 steps: projected image seconds = 400 × s/iteration + 1000 × s/step (retrieval and warm-up /
compilation excluded; compilation is paid once per process and network shape, and is listed on its own).

Variants (one change from fp32 each, then two combinations):

* ``fp32``: peft's LoRA layers, IEEE fp32 (TF32 off): the reference path.
* ``fused``: fused LoRA layers (one convolution with W + s·B·A). Adaptation only: sampling runs the merged
  network, so its sampling numbers are fp32's.
* ``tf32`` / ``bf16``: TF32 math / bf16 autocast for the network (adir_exp.models.execution); loss arithmetic,
  reverse step, variance and guidance stay fp32.
* ``channels_last``: NHWC weights and activations.
* ``compile``: ``nn.Module.compile`` of the adapted network and of the sampling network.
* ``cudagraphs``: the same with mode ``reduce-overhead`` (CUDA graphs; CUDA only).
* ``all_tf32`` / ``all_bf16``: fused + TF32 or bf16 + channels_last + compile.

After the variants, "ADIR-bank": what the adapter bank adds to GD per image (docs/bank.md): one merge of a
stored rank-16 adapter into a copy of the network (load, inject, fold), timed on its own; sampling then runs
the merged network at GD's cost, so bank image s = merge s + 1000 · fp32 s/step, beside GD's 1000 · s/step.

Per variant also: "ε err", the relative L2 difference of the sampling network's ε from fp32's on one input
(precision agreement on random weights, not the LPIPS/PSNR agreement on real images the issue asks for), and
"guided/unguided", the guided step over an unguided step with the same network (target ≤ 1.02).

    python benchmarks/bench_paper_scale.py --device cuda                     # all variants, GD-256
    python benchmarks/bench_paper_scale.py --tiny --threads 1                # tiny ADM on CPU, seconds (CI smoke)
    python benchmarks/bench_paper_scale.py --variants fp32,fused,all_bf16    # a subset
"""

from __future__ import annotations

import argparse
import copy
import gc
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import lpips
import torch
from torch import nn

from adir_exp.adaptation import GDObjective, LoRAAdaptation, add_lora, merge_lora
from adir_exp.adaptation.lora import lora_parameters
from adir_exp.adaptation.objective import lpips_network
from adir_exp.diffusion import NoiseSchedule
from adir_exp.models import UNetDenoiser, random_adm
from adir_exp.models.execution import ExecutedDenoiser, Precision
from adir_exp.operators import BicubicDownsample, GaussianNoise
from adir_exp.samplers import ADIRGuidedSampler, Measurement, UnconditionalSampler
from adir_exp.weights import MissingWeightsError

ADAPTATION_ITERATIONS, SAMPLING_STEPS = 400, 1000  # Table 1


@dataclass(frozen=True)
class Scale:
    name: str
    flags: dict
    batch: int  # adaptation crops per iteration
    crop: int  # adaptation crop side
    size: int  # sampled image side


GD256 = {"image_size": 256, "num_channels": 256, "num_res_blocks": 2, "attention_resolutions": "32,16,8",
         "num_head_channels": 64, "learn_sigma": True, "resblock_updown": True, "use_scale_shift_norm": True}
TINY = {"image_size": 32, "num_channels": 32, "channel_mult": "1,2", "num_res_blocks": 1,
        "attention_resolutions": "16", "num_head_channels": 32, "learn_sigma": True, "resblock_updown": True,
        "use_scale_shift_norm": True}
SCALES = {"paper": Scale("GD-256 ADM", GD256, batch=6, crop=256, size=512),
          "tiny": Scale("tiny ADM", TINY, batch=2, crop=32, size=64)}


@dataclass(frozen=True)
class Variant:
    fused: bool = False
    precision: Precision = "fp32"
    channels_last: bool = False
    compile: bool | str = False

    @property
    def sampling_key(self) -> tuple:
        """What sampling depends on (the adapters are merged away before sampling, fused or not)."""
        return self.precision, self.channels_last, self.compile


VARIANTS = {
    "fp32": Variant(),
    "fused": Variant(fused=True),
    "tf32": Variant(precision="tf32"),
    "bf16": Variant(precision="bf16"),
    "channels_last": Variant(channels_last=True),
    "all_bf16": Variant(fused=True, precision="bf16", channels_last=True, compile=True),
    "all_tf32": Variant(fused=True, precision="tf32", channels_last=True, compile=True),
    "compile": Variant(compile=True),
    "cudagraphs": Variant(compile="reduce-overhead"),
}  # in this order, so that --budget drops the single compiled options before the combinations
COMPILED = {name for name, variant in VARIANTS.items() if variant.compile}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> tuple[float, float]:
    """(median seconds of ``repeats`` calls, total seconds of the ``warmup`` calls before them)."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(warmup):
        run()
    synchronize(device)
    warm = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), warm


def perceptual() -> tuple[nn.Module, str]:
    """The provisioned LPIPS if present, else the same network with a random backbone (the same cost)."""
    try:
        return lpips_network(), "provisioned weights"
    except MissingWeightsError:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return lpips.LPIPS(net="alex", pnet_rand=True, verbose=False), "random backbone (weights not provisioned; same cost)"


def adaptation_iteration(unet, variant: Variant, lpips_net: nn.Module, scale: Scale, device) -> Callable[[], None]:
    """One ADIR adaptation iteration (training_step + backward + Adam) on a fixed batch, as Lightning runs it."""
    objective = GDObjective(UNetDenoiser(unet), NoiseSchedule(), lpips_weight=0.1, perceptual=lpips_net)
    module = LoRAAdaptation(objective, fused=variant.fused, precision=variant.precision,
                            channels_last=variant.channels_last, compile=variant.compile).to(device)
    module.on_fit_start()
    optimizer = module.configure_optimizers()
    generator = torch.Generator().manual_seed(0)
    batch = (torch.rand(scale.batch, 3, scale.crop, scale.crop, generator=generator) * 2 - 1).to(device)

    def run() -> None:
        with warnings.catch_warnings():  # training_step logs outside a Trainer
            warnings.simplefilter("ignore")
            module.backward(module.training_step(batch, 0))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return run


class SamplingBench:
    """Guided and unguided steps, and one ε, of one executed denoiser on a fixed SR ×4 problem."""

    def __init__(self, unet, variant: Variant, scale: Scale, device) -> None:
        denoiser = UNetDenoiser(unet).eval().requires_grad_(False)
        self.denoiser = ExecutedDenoiser(denoiser, variant.precision, variant.channels_last, variant.compile)
        schedule = NoiseSchedule()
        operator = BicubicDownsample(4).to(device)
        shape = (1, 3, scale.size, scale.size)
        truth = (torch.rand(shape, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(device)
        self.measurement = Measurement(GaussianNoise(10)(operator.A(truth)), operator)
        self.x = torch.randn(shape, generator=torch.Generator().manual_seed(2)).to(device)
        self.guided = ADIRGuidedSampler(self.denoiser, schedule, guidance_scale=10.0, num_steps=SAMPLING_STEPS, progress=False)
        self.unguided = UnconditionalSampler(self.denoiser, schedule, num_steps=SAMPLING_STEPS, progress=False)
        self.generator = torch.Generator(device=device).manual_seed(0)

    def step(self, sampler) -> Callable[[], None]:
        index = sampler.indices[SAMPLING_STEPS // 2]
        return lambda: sampler.step(self.x, index, self.measurement, self.generator)

    @torch.no_grad()
    def eps(self) -> torch.Tensor:
        t = torch.full((1,), self.guided.indices[SAMPLING_STEPS // 2], device=self.x.device)
        return self.denoiser(self.x, t).eps


def bank_merge(base: nn.Module, device: torch.device) -> Callable[[], None]:
    """What ADIR-bank pays once per neighbourhood: copy the network, inject its adapter, fold it in."""
    adapter = copy.deepcopy(base)
    add_lora(adapter, rank=16, alpha=8, targets="conv2d", fused=False)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in lora_parameters(adapter):
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 1e-3)
    state = {name: tensor.detach().clone() for name, tensor in adapter.state_dict().items() if "lora_" in name}
    del adapter

    def run() -> None:
        network = copy.deepcopy(base)
        add_lora(network, rank=16, alpha=8, targets="conv2d", fused=False)
        network.load_state_dict(state, strict=False)
        merge_lora(network)

    return run


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a tiny ADM at 32²/64² instead of GD-256 (CPU smoke)")
    parser.add_argument("--variants", default=None, help=f"comma-separated subset of {', '.join(VARIANTS)} "
                        "(default: all; without CUDA all but the compiled ones)")
    parser.add_argument("--iterations", type=int, default=5, help="timed adaptation iterations per variant")
    parser.add_argument("--steps", type=int, default=5, help="timed guided (and unguided) steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first (compilation happens here)")
    parser.add_argument("--budget", type=float, default=None, help="skip variants once this many seconds are spent")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    default = [n for n in VARIANTS if device.type == "cuda" or n not in COMPILED]
    names = args.variants.split(",") if args.variants else default
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    if "fp32" not in names:
        names.insert(0, "fp32")  # every ratio is to fp32
    scale = SCALES["tiny" if args.tiny else "paper"]

    base = random_adm(scale.flags, seed=0).to(device)
    lpips_net, lpips_source = perceptual()
    lpips_net = lpips_net.to(device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'CPU'}, {torch.get_num_threads()} threads"
    params = sum(p.numel() for p in base.parameters()) / 1e6
    print(f"{scale.name} ({params:.1f} M params, random weights) on {device.type} [{where}], torch {torch.__version__}")
    print(f"adaptation: batch {scale.batch} of {scale.crop}², ε-loss + 0.1·LPIPS (LPIPS: {lpips_source}), "
          f"median of {args.iterations} iterations after {args.warmup} warm-up, EXTRAPOLATED ×{ADAPTATION_ITERATIONS}")
    print(f"sampling: 1×3×{scale.size}², ADIR-guided SR ×4, median of {args.steps} steps after {args.warmup} "
          f"warm-up, EXTRAPOLATED ×{SAMPLING_STEPS}; image s = {ADAPTATION_ITERATIONS}·s/iter + "
          f"{SAMPLING_STEPS}·s/step (retrieval and warm-up excluded)")
    header = (f"{'variant':<14} {'s/iter':>8} {'s/step':>8} {'adapt s':>8} {'sample s':>9} {'image s':>8} "
              f"{'vs fp32':>8} {'ε err':>8} {'guided/unguided':>16} {'warm-up s':>10}")
    print(header, flush=True)

    started = time.perf_counter()
    sampling: dict[tuple, tuple[float, float, float, float]] = {}
    reference_eps: torch.Tensor | None = None
    fp32_image = None
    for name in names:
        if args.budget is not None and time.perf_counter() - started > args.budget:
            print(f"{name:<14} skipped: --budget {args.budget:.0f} s spent", flush=True)
            continue
        variant = VARIANTS[name]
        run = adaptation_iteration(copy.deepcopy(base), variant, lpips_net, scale, device)
        s_iter, warm_adapt = timed(run, device, args.warmup, args.iterations)
        del run
        release(device)
        if variant.sampling_key not in sampling:
            bench = SamplingBench(copy.deepcopy(base), variant, scale, device)
            s_step, warm_sample = timed(bench.step(bench.guided), device, args.warmup, args.steps)
            s_unguided, _ = timed(bench.step(bench.unguided), device, 1, args.steps)
            eps = bench.eps().float()
            reference_eps = eps if reference_eps is None else reference_eps
            error = float((eps - reference_eps).norm() / reference_eps.norm())
            sampling[variant.sampling_key] = (s_step, s_step / s_unguided, error, warm_sample)
            del bench
            release(device)
        s_step, guided_ratio, error, warm_sample = sampling[variant.sampling_key]
        adapt, sample = ADAPTATION_ITERATIONS * s_iter, SAMPLING_STEPS * s_step
        image = adapt + sample
        fp32_image = image if fp32_image is None else fp32_image
        print(f"{name:<14} {s_iter:>8.4f} {s_step:>8.4f} {adapt:>8.1f} {sample:>9.1f} {image:>8.1f} "
              f"{image / fp32_image:>7.3f}× {error:>8.1e} {guided_ratio:>16.3f} {warm_adapt + warm_sample:>10.1f}",
              flush=True)
        if variant.compile:
            torch._dynamo.reset()  # the next variant compiles afresh
    if fp32_image is not None:
        s_merge, _ = timed(bank_merge(base, device), device, 1, 3)
        gd = SAMPLING_STEPS * sampling[VARIANTS["fp32"].sampling_key][0]
        print(f"ADIR-bank (fp32): merge {s_merge:.2f} s + sampling {gd:.1f} s = {s_merge + gd:.1f} s per image "
              f"= {(s_merge + gd) / gd:.3f}× GD ({gd:.1f} s; the merge once per neighbourhood, cached after)", flush=True)


if __name__ == "__main__":
    main()
