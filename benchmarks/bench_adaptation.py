"""Cost of one LoRA adaptation iteration, and its memory next to full fine-tuning, on one ADM-architecture model.

Modes, each on the same model (random weights) and the same batch of crops:

* ``frozen``: the same loss, forward + backward through the frozen base network (gradients reach only the
  input crops): the least any gradient-based adaptation must compute.
* ``lora``: one real adaptation iteration with peft's LoRA layers (``fused=False``):
  ``LoRAAdaptation.training_step`` (GDObjective's ε-loss; ``--lpips`` adds the 0.1·LPIPS term) + backward + Adam
  on the adapters (rank 16, every Conv2d).
* ``lora_fused``: the same with fused LoRA layers (one convolution with W + s·B·A per layer; the default).
* ``lora_ckpt``: ``lora_fused`` with gradient checkpointing (activations recomputed in backward).
* ``full``: the same loss with every weight trainable and Adam over all of them.

Targets: lora/frozen time ≤ 1.2, lora/full peak memory ≤ 0.6 (reported for lora and lora_ckpt).

Times are medians over rounds in which the modes take turns, so a shared CPU's load hits all of them alike.
Memory is measured per mode in a fresh subprocess. On CPU it is the peak-RSS growth over the RSS after
building the model: Linux VmHWM, reset before training where /proc allows, with glibc told to unmap freed
tensors. On CUDA it is ``torch.cuda.max_memory_allocated`` over the allocation after building.

    python benchmarks/bench_adaptation.py                            # ADM, 64 ch at 64×64, batch 6, CPU
    python benchmarks/bench_adaptation.py --arch gd256 --device cuda # the paper's GD-256 architecture
    python benchmarks/bench_adaptation.py --arch tiny --batch 1 --rounds 1 --iterations 1   # seconds (smoke run)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import lpips
import torch
from torch import nn

from adir_exp.adaptation import GDObjective, LoRAAdaptation
from adir_exp.adaptation.objective import lpips_network
from adir_exp.diffusion import NoiseSchedule
from adir_exp.models import UNetDenoiser, random_adm
from adir_exp.weights import MissingWeightsError

ARCHITECTURES = {
    "adm64": {"image_size": 64, "num_channels": 64, "attention_resolutions": "32,16,8", "num_head_channels": 64},
    "gd256": {"image_size": 256, "num_channels": 256, "attention_resolutions": "32,16,8", "num_head_channels": 64},
    "tiny": {"image_size": 32, "num_channels": 32, "channel_mult": "1,2", "num_res_blocks": 1,
             "attention_resolutions": "16", "num_head_channels": 32},
}
MODES = ("frozen", "lora", "lora_fused", "lora_ckpt", "full")


class Iteration:
    """One training iteration of ``mode`` on a fixed batch; ``__call__`` runs it."""

    def __init__(self, mode: str, arch: str, batch: int, lpips: bool, device: torch.device) -> None:
        flags = ARCHITECTURES[arch]
        denoiser = UNetDenoiser(random_adm(flags, seed=0))
        weight = 0.1 if lpips else 0.0
        objective = GDObjective(denoiser, NoiseSchedule(), lpips_weight=weight, perceptual=perceptual(lpips))
        self.mode = mode
        self.generator = torch.Generator(device=device).manual_seed(0)
        size = flags["image_size"]
        self.batch = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device) * 2 - 1
        if mode.startswith("lora"):
            self.module = LoRAAdaptation(
                objective, fused=mode != "lora", gradient_checkpointing=mode == "lora_ckpt"
            ).to(device)
            self.module.generator = self.generator
            self.optimizer = self.module.configure_optimizers()
        else:
            self.objective = objective.to(device)
            denoiser.requires_grad_(mode == "full")
            self.optimizer = torch.optim.Adam(denoiser.parameters(), lr=1e-4) if mode == "full" else None

    def __call__(self) -> None:
        if self.mode.startswith("lora"):
            with warnings.catch_warnings():  # training_step logs outside a Trainer
                warnings.simplefilter("ignore")
                self.module.backward(self.module.training_step(self.batch, 0))
        else:
            crops = self.batch if self.mode == "full" else self.batch.clone().requires_grad_(True)
            self.objective.loss(crops, self.generator)["loss"].backward()
        if self.optimizer is not None:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)


def perceptual(enabled: bool) -> nn.Module | None:
    """LPIPS for ``--lpips``: the provisioned one if present, else the same network with a random backbone
    (identical cost)."""
    if not enabled:
        return None
    try:
        return lpips_network()
    except MissingWeightsError:
        return lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_iteration(args, device: torch.device) -> dict[str, float]:
    """Median seconds per iteration of every mode, the modes taking turns round by round."""
    iterations = {mode: Iteration(mode, args.arch, args.batch, args.lpips, device) for mode in MODES}
    for run in iterations.values():  # warm-up (allocator, kernels)
        run()
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode, run in iterations.items():
            synchronize(device)
            start = time.perf_counter()
            run()
            synchronize(device)
            times[mode].append(time.perf_counter() - start)
    return {mode: sorted(t)[len(t) // 2] for mode, t in times.items()}


def rss_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def probe_memory(args, device: torch.device) -> int:
    """Peak memory growth (bytes) of ``args.iterations`` iterations of ``args.probe`` in this fresh process."""
    run = Iteration(args.probe, args.arch, args.batch, args.lpips, device)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        except OSError:
            pass  # then the peak may include model building: an overestimate, the same for every mode
        before = rss_bytes("VmRSS")
    for _ in range(args.iterations):
        run()
    synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else rss_bytes("VmHWM")
    return peak - before


def peak_memory(args, mode: str) -> int:
    """Run the probe of ``mode`` in a fresh process. glibc there maps every block of 64 KiB or more on its own and
    unmaps it when freed, so peak RSS follows peak live memory rather than the heap's high-water mark."""
    command = [sys.executable, __file__, "--probe", mode, *sys.argv[1:]]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode:
        raise RuntimeError(f"memory probe of {mode} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_bytes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="adm64")
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=5, help="timed iterations per mode (after one warm-up)")
    parser.add_argument("--iterations", type=int, default=2, help="iterations per memory probe")
    parser.add_argument("--lpips", action="store_true", help="include the 0.1·LPIPS term in lora and full")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--probe", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.probe:
        print(json.dumps({"peak_bytes": probe_memory(args, device)}))
        return

    seconds = seconds_per_iteration(args, device)
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()  # the probes run in child processes that need the memory this one cached
    memory = {mode: peak_memory(args, mode) for mode in MODES}
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'CPU'}"
    size = ARCHITECTURES[args.arch]["image_size"]
    print(f"{args.arch} ({size}×{size}, batch {args.batch}, loss: ε{' + 0.1·LPIPS' if args.lpips else ''}) on "
          f"{device.type} [{where}, {torch.get_num_threads()} threads], median of {args.rounds}")
    print(f"{'mode':<10} {'s/iteration':>12} {'vs frozen':>10} {'peak memory':>12} {'vs full':>8}")
    for mode in MODES:
        print(f"{mode:<10} {seconds[mode]:>12.3f} {seconds[mode] / seconds['frozen']:>9.2f}× "
              f"{memory[mode] / 2**20:>9.0f} MiB {memory[mode] / memory['full']:>7.2f}×")
    for mode in ("lora", "lora_fused", "lora_ckpt"):
        print(f"targets, {mode}: time vs frozen {seconds[mode] / seconds['frozen']:.2f} (≤ 1.2), "
              f"memory vs full {memory[mode] / memory['full']:.2f} (≤ 0.6)")


if __name__ == "__main__":
    main()
