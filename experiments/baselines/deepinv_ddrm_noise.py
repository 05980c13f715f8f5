"""Why deepinv's DDRM scores ~4.5 dB below ours on the mini-reproduction tiles (docs/baselines.md): it draws each
step's noise as σ·z/√2 while telling the denoiser σ. Run deepinv's DDRM on tile 0 of each held-out photo as it is,
with x̂0 clamped, and with the 1/√2 removed (its module's np.sqrt(2.0) patched to 1), and print PSNR and the RMS of
the 4-neighbour Laplacian (grain). Needs the GPU rows' ground-truth tiles in outputs/bench_gpu/ (gpu_session.sh)
or any 96-px tiles at that path. Usage: PYTHONPATH=.:src python experiments/baselines/deepinv_ddrm_noise.py"""
import glob, math, types, numpy as np, torch
from PIL import Image
from hydra.utils import instantiate
import deepinv.sampling.diffusion as dd
from adir_exp.methods import DeepinvReconstruction
from adir_exp.operators import BicubicDownsample, GaussianNoise, Physics
from adir_exp.problem import measure
from tests.cli.helpers import compose_app
import tempfile
torch.set_num_threads(1)
prior = instantiate(compose_app("run", ["model=adir_prior"], tempfile.mkdtemp()).model)
physics = Physics(BicubicDownsample(4), GaussianNoise(0.0))
def psnr(a, b): return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))
def hf(a):  # energy of the 4-neighbour Laplacian: grain
    l = 4 * a[..., 1:-1, 1:-1] - a[..., :-2, 1:-1] - a[..., 2:, 1:-1] - a[..., 1:-1, :-2] - a[..., 1:-1, 2:]
    return float(l.pow(2).mean().sqrt())
class Shim:
    def __init__(self, factor): self.factor = factor
    def __getattr__(self, name): return getattr(np, name)
    def sqrt(self, x): return self.factor if x == 2.0 else np.sqrt(x)
for tile in ["Blinds-f7aac0dc_t0", "LadyBird-e35a9a41_t0", "astronaut-88431cd9_t0", "greentock_by_Peter_Nerlich-e7b20e2d_t0"]:
    f = glob.glob(f"outputs/bench_gpu/mini_repro_sr4/images/{tile}/ground_truth-*.png")[0]
    x = torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1)[None].float() / 255
    problem = measure(tile, x, physics, 0, torch.device("cpu"))
    out = {}
    for name, kw, factor in [("deepinv as is", {}, math.sqrt(2)), ("clip x0", {"clip": True}, math.sqrt(2)),
                             ("noise ×1 (no 1/√2)", {}, 1.0)]:
        dd.np = Shim(factor)
        method = DeepinvReconstruction("ddrm", num_steps=20, settings={"eta": 0.85, "etab": 1.0}, **kw)
        est = method.reconstruct(problem, prior).image
        out[name] = (psnr(est, x), hf(est))
    dd.np = np
    print(tile, "truth hf %.4f" % hf(x), {k: "%.2f dB, hf %.4f" % v for k, v in out.items()}, flush=True)
