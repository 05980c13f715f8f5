"""The one measurement path: seeds per image, y from the physics object, the sampling generator every method shares."""

from __future__ import annotations

import torch

from adir_exp.operators import BoxBlur, GaussianNoise, Physics
from adir_exp.problem import image_seed, measure

CPU = torch.device("cpu")


def test_image_seed_depends_on_the_image_not_on_the_order() -> None:
    assert image_seed(0, "a_t0") == image_seed(0, "a_t0") != image_seed(0, "a_t1")
    assert image_seed(1, "a_t0") != image_seed(0, "a_t0")


def test_measure_draws_the_noise_from_the_images_own_seed() -> None:
    physics = Physics(BoxBlur(5), GaussianNoise(10.0))
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    a, b = measure("img", x, physics, 0, CPU), measure("img", x, physics, 0, CPU)
    assert torch.equal(a.y, b.y) and a.seed == image_seed(0, "img")
    assert not torch.equal(a.y, measure("other", x, physics, 0, CPU).y)
    noise = a.y - physics.operator.A(x * 2 - 1)
    assert abs(noise.std().item() - 2 * 10 / 255) < 0.01
    assert a.measurement.noise_std == physics.noise.std


def test_every_method_gets_the_same_fresh_sampling_generator() -> None:
    problem = measure("img", torch.rand(1, 3, 8, 8), Physics(BoxBlur(3), GaussianNoise(0.0)), 0, CPU)
    first = torch.rand(4, generator=problem.generator())
    assert torch.equal(first, torch.rand(4, generator=problem.generator()))
    assert not torch.equal(first, torch.rand(4, generator=torch.Generator().manual_seed(problem.seed)))
