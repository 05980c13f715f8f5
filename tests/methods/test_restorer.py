"""The paper's supervised baselines load through spandrel from user files (tensors only) and restore y of the task.

Each architecture is built with random weights by spandrel's own classes in a tiny configuration, saved where the
registry says the user's checkpoint goes, and read back through the method: safetensors, or a torch.save'd
checkpoint wrapped as the official releases are ({"state_dict": {"module.…": …}}).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

spandrel = pytest.importorskip("spandrel")
extra = pytest.importorskip("spandrel_extra_arches")

from safetensors.torch import save_file
from spandrel.architectures.ESRGAN import ESRGAN
from spandrel.architectures.IPT import IPT
from spandrel.architectures.SwinIR import SwinIR
from spandrel_extra_arches.architectures.M3SNet import M3SNet
from spandrel_extra_arches.architectures.MPRNet import MPRNet
from spandrel_extra_arches.architectures.Restormer import Restormer

from adir_exp.methods import SupervisedRestorer
from adir_exp.operators import (
    BicubicDownsample,
    BoxBlur,
    GaussianNoise,
    Inpainting,
    Physics,
)
from adir_exp.problem import measure
from adir_exp.weights import CheckpointError, MissingWeightsError, entry

SR4 = Physics(BicubicDownsample(4), GaussianNoise(0.0))
DEBLUR = Physics(BoxBlur(5), GaussianNoise(10.0))

# name: (spandrel id, tiny network, registry key, task)
NETWORKS = {
    "swinir": ("SwinIR", lambda: SwinIR(img_size=16, embed_dim=12, depths=[1], num_heads=[2], window_size=4,
                                        mlp_ratio=2, upscale=4, upsampler="pixelshuffle"), "swinir-sr4", SR4),
    "realesrgan": ("ESRGAN", lambda: ESRGAN(num_filters=8, num_blocks=1, scale=4), "realesrgan-sr4", SR4),
    "ipt": ("IPT", lambda: IPT(patch_size=12, patch_dim=3, n_feats=8, num_heads=1, num_layers=1, scale=[4]),
            "ipt-sr4", SR4),
    "restormer": ("Restormer", lambda: Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1,
                                                  heads=[1, 1, 1, 1]), "restormer-deblur", DEBLUR),
    "mprnet": ("MPRNet", lambda: MPRNet(n_feat=8, scale_unetfeats=4, scale_orsnetfeats=4, num_cab=1),
               "mprnet-deblur", DEBLUR),
    "m3snet": ("M3SNet", lambda: M3SNet(width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1]),
               "m3snet-deblur", DEBLUR),
}  # fmt: skip


def install(key: str, network: torch.nn.Module) -> Path:
    """Put ``network``'s weights where the registry expects the user's file (the name's suffix says the format)."""
    path = entry(key).path
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.clone().contiguous() for name, tensor in network.state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(state, path)
    else:  # as the official releases: a wrapper dict, keys from a DataParallel module
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    return path


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_each_architecture_loads_from_the_users_file_and_restores_y(name, isolated_home) -> None:
    architecture, build, key, physics = NETWORKS[name]
    network = build().eval()
    install(key, network)
    method = SupervisedRestorer(architecture, {1 if physics is DEBLUR else 4: key})
    method.check(None, physics)
    problem = measure("tile", torch.rand(1, 3, 24, 40), physics, 0, torch.device("cpu"))
    restored = method.reconstruct(problem).image
    assert restored.shape == (1, 3, 24, 40) and 0.0 <= restored.min() and restored.max() <= 1.0
    # the network itself, on y in [0, 1] padded as spandrel pads, gives the same image: y reached it unchanged
    y = problem.y_in_unit_range().clamp(0.0, 1.0)
    assert torch.allclose(restored, method.model_for(physics)(y).clamp(0.0, 1.0), atol=1e-6)


def test_a_missing_checkpoint_names_the_file_and_where_it_goes(isolated_home) -> None:
    method = SupervisedRestorer("SwinIR", {4: "swinir-sr4"})
    with pytest.raises(MissingWeightsError, match="001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth") as caught:
        method.check(None, SR4)
    assert str(isolated_home / "weights") in str(caught.value) and "\n" not in str(caught.value)


def test_a_checkpoint_of_another_network_or_factor_is_refused(isolated_home) -> None:
    install("swinir-sr4", ESRGAN(num_filters=8, num_blocks=1, scale=4))
    with pytest.raises(ValueError, match="is a ESRGAN checkpoint, the method expects SwinIR"):
        SupervisedRestorer("SwinIR", {4: "swinir-sr4"}).check(None, SR4)
    install("swinir-sr8", ESRGAN(num_filters=8, num_blocks=1, scale=4))
    with pytest.raises(ValueError, match="enlarges ×4, the task needs ×8"):
        SupervisedRestorer("ESRGAN", {8: "swinir-sr8"}).check(None, Physics(BicubicDownsample(8), GaussianNoise(0.0)))


def test_tasks_without_a_checkpoint_or_without_an_image_y_are_refused(isolated_home) -> None:
    with pytest.raises(ValueError, match="no checkpoint for ×1"):
        SupervisedRestorer("SwinIR", {4: "swinir-sr4"}).check(None, DEBLUR)
    with pytest.raises(ValueError, match="super-resolution and deblurring tasks, not Inpainting"):
        SupervisedRestorer("SwinIR", {4: "swinir-sr4"}).check(None, Physics(Inpainting(), GaussianNoise(0.0)))


def test_a_pickle_with_code_is_refused_not_run(isolated_home) -> None:
    path = entry("realesrgan-sr4").path
    path.parent.mkdir(parents=True)
    torch.save({"params": torch.nn.Linear(2, 2)}, path)  # a module object: unpickling it would import code
    with pytest.raises(CheckpointError, match="refusing to load"):
        SupervisedRestorer("ESRGAN", {4: "realesrgan-sr4"}).check(None, SR4)
