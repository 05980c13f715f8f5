"""Is the embedded prior a real prior? ×4 super-resolution of the held-out corpus images with ADIR guidance,
scored by PSNR against plain bicubic upsampling of the same measurement (docs/prior.md).

As a control, the same sampler runs with an exact white-Gaussian prior (per-channel mean/std of the bundled
retrieval photos): whatever the learned prior adds beyond that is structure it learned from the photos.

    python -m adir_exp.prior_training.sr_check --size 64 --steps 100 --scales 10 30 100 --out outputs/sr_check
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from adir_exp.paths import ASSETS_DIR, configure_environment

TEST_DIR = ASSETS_DIR / "corpus" / "test"
CONTROL_DIR = ASSETS_DIR / "corpus" / "retrieval"


def run_check(checkpoint: Path | None, size: int, steps: int, scales: Sequence[float], variance: str, seed: int,
              out: Path | None) -> dict:
    from adir_exp.data.images import (
        image_grid,
        load_image,
        save_image,
        to_image_range,
        to_model_range,
    )
    from adir_exp.diffusion import NoiseSchedule
    from adir_exp.evaluation.benchmark_images import prepare
    from adir_exp.metrics import PSNR
    from adir_exp.models import GaussianPriorDenoiser, UNetDenoiser, load_unet
    from adir_exp.operators import BicubicDownsample
    from adir_exp.prior_training import PRIOR_DIR
    from adir_exp.samplers import ADIRGuidedSampler, Measurement, NonFiniteSampleError

    psnr = PSNR()
    files = sorted(TEST_DIR.glob("*.png"))
    truth = torch.cat([prepare(p, size, "resize_crop") for p in files])
    operator = BicubicDownsample(4)
    y = operator.A(to_model_range(truth))  # noiseless: GaussianNoise(0)
    bicubic = to_image_range(operator.upsample(y))  # MATLAB imresize bicubic, as the benchmark's baseline
    schedule = NoiseSchedule()
    pixels = torch.cat([to_model_range(load_image(p)).flatten(2) for p in sorted(CONTROL_DIR.glob("*.png"))], 2)
    priors = {
        "adir_prior": UNetDenoiser(load_unet(checkpoint or PRIOR_DIR), fixed_variance=variance),
        "white-gaussian": GaussianPriorDenoiser(pixels.mean((0, 2)).view(3, 1, 1), pixels.std((0, 2)).view(3, 1, 1),
                                                schedule),
    }
    result = {"images": [p.name for p in files], "size": size, "steps": steps, "variance": variance, "seed": seed,
              "bicubic": psnr(bicubic, truth).tolist(), "adir": {}}
    columns = [truth, bicubic]
    for scale in scales:
        for name, denoiser in priors.items():
            sampler = ADIRGuidedSampler(denoiser, schedule, num_steps=steps, guidance_scale=scale, progress=False)
            generator = torch.Generator().manual_seed(seed)
            key = f"{name} s={scale:g}"
            start = time.monotonic()
            try:
                x = sampler.sample(tuple(truth.shape), Measurement(y, operator), generator=generator)
            except NonFiniteSampleError as error:  # guidance beyond its stability bound: recorded, not fatal
                result["adir"][key] = {"diverged": str(error)}
                continue
            estimate = to_image_range(x)
            consistency = (operator.A(x) - y).pow(2).mean().sqrt().item()
            result["adir"][key] = {"psnr": psnr(estimate, truth).tolist(), "seconds": time.monotonic() - start,
                                   "rmse_Ax_y": consistency}
            if name == "adir_prior":
                columns.append(estimate)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        stem = f"sr_check_{size}px_{steps}steps_{variance}"
        (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
        rows = [image_grid([c[i : i + 1] for c in columns]) for i in range(len(files))]
        save_image(torch.cat(rows, dim=-2), out / f"{stem}.png")  # columns: truth, bicubic, adir_prior per s
    return result


def main(argv: Sequence[str] | None = None) -> int:
    configure_environment()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="exported prior dir (default: shipped one)")
    parser.add_argument("--size", type=int, default=64, help="ground-truth side (short side resized, centre crop)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--scales", type=float, nargs="+", default=[10.0, 30.0, 100.0])
    parser.add_argument("--variance", choices=["fixed_large", "fixed_small"], default="fixed_small",
                        help="Σ of the learned prior (the white-Gaussian control always uses fixed_small)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write sr_check.json and an image grid here")
    args = parser.parse_args(argv)
    result = run_check(args.checkpoint, args.size, args.steps, args.scales, args.variance, args.seed, args.out)

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    print(f"×4 SR, {len(result['images'])} held-out images at {args.size}px, {args.steps} steps, {args.variance}")
    print(f"{'method':<32}{'mean PSNR':>10}  per image ({', '.join(result['images'])})")
    print(f"{'bicubic':<32}{mean(result['bicubic']):>10.2f}  " + " ".join(f"{v:.2f}" for v in result["bicubic"]))
    for key, row in result["adir"].items():
        label = f"ADIR {key}"
        if "diverged" in row:
            print(f"{label:<32}{'diverged':>10}  {row['diverged']}")
            continue
        print(f"{label:<32}{mean(row['psnr']):>10.2f}  " + " ".join(f"{v:.2f}" for v in row["psnr"])
              + f"   ‖Ax−y‖rms {row['rmse_Ax_y']:.4f}  {row['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
