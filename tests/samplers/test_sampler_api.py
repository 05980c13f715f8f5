"""Step API behaviour shared by all samplers: determinism, shape checks, NaN reporting, DPS gradients."""

from __future__ import annotations

import pytest
import torch

from adir_exp.diffusion import NoiseSchedule
from adir_exp.models import DenoiserOutput, GaussianPriorDenoiser
from adir_exp.operators import BicubicDownsample, OperatorInputError
from adir_exp.samplers import (
    ADIRGuidedSampler,
    DDRMSampler,
    DPSSampler,
    Measurement,
    NonFiniteSampleError,
    UnconditionalSampler,
)

SHAPE = (2, 3, 8, 8)


@pytest.fixture
def denoiser() -> GaussianPriorDenoiser:
    return GaussianPriorDenoiser(torch.zeros(3, 8, 8), torch.full((3, 8, 8), 0.3), NoiseSchedule())


@pytest.fixture
def measurement() -> Measurement:
    operator = BicubicDownsample(2)
    return Measurement(operator.A(torch.rand(SHAPE) * 2 - 1), operator)


@pytest.mark.parametrize("sampler_cls", [UnconditionalSampler, ADIRGuidedSampler, DPSSampler, DDRMSampler])
def test_same_seed_same_sample(sampler_cls, denoiser, measurement) -> None:
    sampler = sampler_cls(denoiser, NoiseSchedule(), num_steps=20, progress=False)
    a = sampler.sample(SHAPE, measurement, generator=torch.Generator().manual_seed(3))
    b = sampler.sample(SHAPE, measurement, generator=torch.Generator().manual_seed(3))
    c = sampler.sample(SHAPE, measurement, generator=torch.Generator().manual_seed(4))
    assert a.shape == SHAPE
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("sampler_cls", [ADIRGuidedSampler, DPSSampler, DDRMSampler])
def test_conditional_samplers_need_a_measurement(sampler_cls, denoiser) -> None:
    with pytest.raises(ValueError, match="needs a measurement"):
        sampler_cls(denoiser, NoiseSchedule(), num_steps=5, progress=False).sample(SHAPE)


@pytest.mark.parametrize("sampler_cls", [ADIRGuidedSampler, DDRMSampler])
def test_measurement_shape_must_match_the_operator(sampler_cls, denoiser) -> None:
    sampler = sampler_cls(denoiser, NoiseSchedule(), num_steps=5, progress=False)
    wrong = Measurement(torch.zeros(2, 3, 8, 8), BicubicDownsample(2))
    with pytest.raises(OperatorInputError, match="give measurements of shape"):
        sampler.sample(SHAPE, wrong)


class NaNAfter(GaussianPriorDenoiser):
    """Returns NaN once the model timestep drops below ``threshold``."""

    threshold = 500

    def forward(self, x_t, t):
        out = super().forward(x_t, t)
        if int(t[0]) < self.threshold:
            return DenoiserOutput(eps=out.eps * float("nan"))
        return out


def test_non_finite_values_name_the_step() -> None:
    schedule = NoiseSchedule()
    sampler = UnconditionalSampler(NaNAfter(torch.zeros(3, 8, 8), torch.ones(3, 8, 8), schedule), schedule, num_steps=10, progress=False)
    # 10 steps visit t = 999, 888, …, 444: the first below 500 is the 6th step, t = 444.
    with pytest.raises(NonFiniteSampleError, match=r"step 6 of 10 .*t=444"):
        sampler.sample(SHAPE, generator=torch.Generator().manual_seed(0))


def test_dps_moves_towards_the_measurement(denoiser, measurement) -> None:
    kwargs = dict(num_steps=50, progress=False)
    free = UnconditionalSampler(denoiser, NoiseSchedule(), **kwargs).sample(SHAPE, generator=torch.Generator().manual_seed(0))
    dps = DPSSampler(denoiser, NoiseSchedule(), step_size=1.0, **kwargs).sample(
        SHAPE, measurement, generator=torch.Generator().manual_seed(0)
    )
    operator = measurement.operator
    assert (operator.A(dps) - measurement.y).norm() < 0.7 * (operator.A(free) - measurement.y).norm()


def test_progress_bar_is_shown(denoiser, capsys) -> None:
    UnconditionalSampler(denoiser, NoiseSchedule(), num_steps=3, progress=True).sample(SHAPE)
    assert "UnconditionalSampler" in capsys.readouterr().err
