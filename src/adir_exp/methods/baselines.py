"""Reconstructions without a learned prior: the reference rows of the tables."""

from __future__ import annotations

from adir_exp.data.images import to_image_range
from adir_exp.methods.base import Estimate, Method
from adir_exp.operators import BicubicDownsample


class NoPrior(Method):
    uses_prior = False


class PseudoInverse(NoPrior):
    """A⁺ y (for deblurring a damped least-squares solution, see ``LinearOperator.A_pinv``)."""

    def reconstruct(self, problem, prior=None, retriever=None) -> Estimate:
        return Estimate(to_image_range(problem.physics.operator.A_pinv(problem.y)).cpu())


class MeasurementAsImage(NoPrior):
    """y in image space, the baseline of tasks without a bicubic one (deblurring: the blurred input)."""

    def reconstruct(self, problem, prior=None, retriever=None) -> Estimate:
        return Estimate(problem.y_as_image())


class BicubicUpsampling(NoPrior):
    """The classic SR baseline: MATLAB ``imresize(y, factor, 'bicubic')``, the cubic of the operator itself."""

    def check(self, prior, physics, retriever=None) -> None:
        if not isinstance(physics.operator, BicubicDownsample):
            raise ValueError("the bicubic baseline applies to super-resolution tasks only; use pseudo_inverse")

    def reconstruct(self, problem, prior=None, retriever=None) -> Estimate:
        return Estimate(to_image_range(problem.physics.operator.upsample(problem.y)).cpu())
