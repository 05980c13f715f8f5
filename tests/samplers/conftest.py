"""The analytic Gaussian prior shared by the sampler tests (see ``analytic_prior``)."""

from __future__ import annotations

import pytest

from tests.samplers.analytic_prior import make_prior


@pytest.fixture(scope="module")
def prior():
    return make_prior()
