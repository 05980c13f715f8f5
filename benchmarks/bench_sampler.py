"""Seconds per sampler step for unguided, ADIR-guided and DPS sampling, on one model and one input.

ADIR's guidance is closed-form (one A, one Aᵀ and one A ε per step) while DPS back-propagates through the
network, so the targets are ADIR/unguided ≤ 1.05 and ADIR/DPS ≤ 0.45.

    python benchmarks/bench_sampler.py                       # ADM-architecture model (64 ch), 128×128, SR ×4
    python benchmarks/bench_sampler.py --arch gd256 --size 256   # the paper's GD-256 architecture (random weights)
    python benchmarks/bench_sampler.py --arch tiny --size 32 --steps 1   # seconds on a CPU (the suite's smoke run)
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from adir_exp.cli.config import CONF_DIR
from adir_exp.diffusion import NoiseSchedule
from adir_exp.models import UNetDenoiser, random_adm
from adir_exp.operators import GaussianNoise
from adir_exp.samplers import (
    ADIRGuidedSampler,
    DPSSampler,
    Measurement,
    UnconditionalSampler,
)

ARCHITECTURES = {
    "small": dict(image_size=64, num_channels=64, channel_mult="1,2,2,2", num_res_blocks=2, attention_resolutions="16,8",
                  num_head_channels=32),
    "gd256": dict(image_size=256, num_channels=256, num_res_blocks=2, attention_resolutions="32,16,8", num_head_channels=64),
    "tiny": dict(image_size=32, num_channels=32, channel_mult="1,2", num_res_blocks=1, attention_resolutions="16",
                 num_head_channels=32),
}


def seconds_per_step(sampler, shape, measurement, steps: int, device) -> float:
    """Median wall time of ``steps`` consecutive steps after one warm-up step."""
    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(shape, generator=generator, device=device)
    indices = sampler.indices[: steps + 1]
    times = []
    for n, index in enumerate(indices):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        x = sampler.step(x, index, measurement, generator).prev_sample
        if device.type == "cuda":
            torch.cuda.synchronize()
        if n:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="small")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--task", default="sr4", help="a conf/task option")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per sampler (after one warm-up)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    flags = {**ARCHITECTURES[args.arch], "learn_sigma": True, "resblock_updown": True, "use_scale_shift_norm": True}
    denoiser = UNetDenoiser(random_adm(flags, seed=0)).to(device).eval()
    for p in denoiser.parameters():
        p.requires_grad_(False)
    schedule = NoiseSchedule()
    task = OmegaConf.load(CONF_DIR / "task" / f"{args.task}.yaml")
    operator = instantiate(task.physics.operator).to(device)
    shape = (args.batch, 3, args.size, args.size)
    truth = torch.rand(shape, generator=torch.Generator().manual_seed(1)).to(device) * 2 - 1
    measurement = Measurement(GaussianNoise(10)(operator.A(truth)), operator)

    common = dict(num_steps=1000, progress=False)
    samplers = {
        "unguided": UnconditionalSampler(denoiser, schedule, **common),
        "adir": ADIRGuidedSampler(denoiser, schedule, guidance_scale=10.0, **common),
        "dps": DPSSampler(denoiser, schedule, step_size=0.5, **common),
    }
    timings = {name: seconds_per_step(s, shape, measurement, args.steps, device) for name, s in samplers.items()}
    params = sum(p.numel() for p in denoiser.parameters()) / 1e6
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'CPU'} ({torch.get_num_threads()} threads)"
    print(f"device: {name}; model: ADM {args.arch} ({params:.1f} M params, random weights); "
          f"input {args.batch}×3×{args.size}×{args.size}; task {args.task}; median of {args.steps} steps")
    print(f"{'sampler':<10} {'s/step':>10}")
    for key, value in timings.items():
        print(f"{key:<10} {value:>10.4f}")
    adir_unguided = timings["adir"] / timings["unguided"]
    adir_dps = timings["adir"] / timings["dps"]
    print(f"ADIR/unguided = {adir_unguided:.3f}  (target ≤ 1.05: {'met' if adir_unguided <= 1.05 else 'NOT met'})")
    print(f"ADIR/DPS      = {adir_dps:.3f}  (target ≤ 0.45: {'met' if adir_dps <= 0.45 else 'NOT met'})")


if __name__ == "__main__":
    main()
