"""deepinv's diffusion samplers (DPS, DDRM, DiffPIR) on our prior and our operators: an outside implementation
run on the same prior, y and task as our own DPS/DDRM, and DiffPIR as an extra baseline row.

deepinv's conventions (checked in its 0.5 source): images on [0, 1]; a denoiser D(x, σ) takes x = x₀ + σn on that
scale and returns x₀'s estimate; physics acts on [0, 1] images, y = A x₀₁ + e with e's std on [0, 1]. Our prior is
an ε-model on [−1, 1] with a discrete DDPM schedule, so :class:`PriorDenoiser` maps σ to the VP state
x_t = √ᾱ(2x − 1), ᾱ = 1/(1 + 4σ²), calls the network at the training timestep whose noise level is nearest (in
log σ) and returns (x̂₀ + 1)/2, as deepinv's own ``DiffUNet`` does for ADM. :func:`deepinv_physics` gives our
operator's SVD to deepinv (``DecomposablePhysics``: Vᵀx in the image's shape, Uᵀy zero-padded to it, Σ as
``mask``), or A and its true adjoint where there is no SVD. The differences from our samplers, measured and
explained, are in docs/baselines.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch

from adir_exp.diffusion import NoiseSchedule, space_timesteps
from adir_exp.methods.base import Estimate, Method

if TYPE_CHECKING:
    from adir_exp.models.denoiser import Denoiser
    from adir_exp.operators import LinearOperator, Physics

Algorithm = Literal["dps", "ddrm", "diffpir"]
INSTALL_HINT = "install the optional extra: pip install -e '.[peers]'"


def _deepinv() -> Any:
    try:
        import deepinv
    except ImportError as error:
        raise ValueError(f"the deepinv rows need deepinv: {INSTALL_HINT}") from error
    return deepinv


def prior_noise_levels(schedule: NoiseSchedule) -> torch.Tensor:
    """σ_t = √((1 − ᾱ_t)/ᾱ_t) of x_t/√ᾱ_t on the model's [−1, 1] scale, for every training timestep (float64)."""
    abar = schedule.alphas_cumprod
    return ((1.0 - abar) / abar).sqrt()


def vp_times(schedule: NoiseSchedule, timesteps: list[int], beta_min: float = 0.1, beta_max: float = 20.0):
    """The continuous times of deepinv's VP SDE (β(t) = β_min + t(β_max − β_min)) whose ᾱ(t) = exp(−B(t)) equals
    the prior's ᾱ at ``timesteps``, largest first: with them deepinv's DDPM solver visits our respaced levels."""
    log_abar = -schedule.alphas_cumprod[sorted(timesteps, reverse=True)].log()
    slope = beta_max - beta_min
    times = (-beta_min + (beta_min**2 + 2.0 * slope * log_abar).sqrt()) / slope
    return torch.cat([times, times.new_zeros(1)])  # the ancestral solvers end at t = 0


def make_prior_denoiser(denoiser: Denoiser, schedule: NoiseSchedule, clip: bool = False) -> Any:
    """Our ε-model as a deepinv ``Denoiser`` (see the module docstring); ``clip`` clamps x̂₀ to [−1, 1] first."""
    deepinv = _deepinv()

    class PriorDenoiser(deepinv.models.Denoiser):
        def __init__(self) -> None:
            super().__init__()
            self.model = denoiser
            self.register_buffer("abar", schedule.alphas_cumprod.float(), persistent=False)
            self.register_buffer("log_sigma", prior_noise_levels(schedule).log().float(), persistent=False)

        def forward(self, x: torch.Tensor, sigma: float | torch.Tensor, **kwargs) -> torch.Tensor:
            sigma = self._handle_sigma(sigma, batch_size=x.shape[0], ndim=x.ndim, device=x.device, dtype=x.dtype)
            sigma_model = (2.0 * sigma).flatten()
            t = (self.log_sigma[None] - sigma_model.clamp_min(1e-12).log()[:, None]).abs().argmin(dim=1)
            abar = self.abar.to(x.device)[t].view(-1, 1, 1, 1)
            x_t = abar.sqrt() * (2.0 * x - 1.0)  # exact where σ is one of the prior's levels (our respaced ones)
            eps = self.model(x_t, t).eps
            x0 = (x_t - (1.0 - abar).sqrt() * eps) / abar.sqrt()
            if clip:
                x0 = x0.clamp(-1.0, 1.0)
            return (x0 + 1.0) / 2.0

    return PriorDenoiser()


def deepinv_physics(physics: Physics, image_shape: tuple[int, ...], noise_floor: float = 0.0) -> Any:
    """Our y = A x + e as deepinv physics on [0, 1] images (noise std σ/255, at least ``noise_floor``)."""
    deepinv = _deepinv()
    operator: LinearOperator = physics.operator
    noise = deepinv.physics.GaussianNoise(sigma=max(physics.noise.sigma / 255.0, noise_floor))
    if not operator.supports_svd:
        return deepinv.physics.LinearPhysics(A=operator.A, A_adjoint=operator.A_adjoint, noise_model=noise)
    shape = (1, *image_shape[1:])
    sigma = operator.singular_values(shape)[None].float()

    def U(z: torch.Tensor) -> torch.Tensor:
        measured = operator.measurement_shape((z.shape[0], *image_shape[1:]))
        return operator.U(operator.to_measurement_spectrum(z, measured))

    def U_adjoint(y: torch.Tensor) -> torch.Tensor:
        return operator.to_image_spectrum(operator.U_adjoint(y), (y.shape[0], *image_shape[1:]))

    return deepinv.physics.DecomposablePhysics(
        U=U, U_adjoint=U_adjoint, V=operator.V, V_adjoint=operator.V_adjoint, mask=sigma, noise_model=noise
    )


class DeepinvReconstruction(Method):
    """One of deepinv's samplers on the run's pixel prior: ``dps`` (``deepinv.sampling.DPS``, DDPM solver at our
    respaced levels), ``ddrm`` (``deepinv.sampling.DDRM`` at our respaced levels, on [0, 1]) or ``diffpir``
    (``deepinv.sampling.DiffPIR``, its own schedule, which equals the prior's linear 1e-4…0.02).

    ``num_steps``: network calls; ``settings``: the algorithm's own arguments (DPS ``weight``/``guidance``, DDRM
    ``eta``/``etab``, DiffPIR ``zeta``/``lambda_``); ``clip``: clamp x̂₀ inside the denoiser; ``noise_floor``: the
    least noise std deepinv is told (DiffPIR's ρ_t ∝ σ_n² vanishes for noise-free y).
    """

    def __init__(
        self,
        algorithm: Algorithm,
        num_steps: int = 100,
        settings: dict[str, Any] | None = None,
        clip: bool = False,
        noise_floor: float = 0.0,
    ) -> None:
        if algorithm not in ("dps", "ddrm", "diffpir"):
            raise ValueError(f"deepinv algorithm must be dps, ddrm or diffpir, got {algorithm!r}")
        if num_steps < 2:
            raise ValueError(f"deepinv {algorithm}: num_steps must be at least 2, got {num_steps}")
        self.algorithm = algorithm
        self.num_steps = num_steps
        self.settings = dict(settings or {})
        self.clip = clip
        self.noise_floor = noise_floor

    def check(self, prior, physics: Physics, retriever=None) -> None:
        _deepinv()
        if not hasattr(prior, "schedule") or not hasattr(prior, "denoiser"):
            raise ValueError(f"deepinv's {self.algorithm} runs on pixel-space ε-priors, not {type(prior).__name__}")
        if self.algorithm == "ddrm" and not physics.operator.supports_svd:
            name = type(physics.operator).__name__
            raise ValueError(f"deepinv's DDRM needs an operator with an SVD, {name} has none")

    def sampler(self, prior, device: torch.device, generator: torch.Generator) -> Any:
        """The configured deepinv reconstructor around ``prior``'s network."""
        deepinv = _deepinv()
        schedule = prior.schedule
        denoiser = make_prior_denoiser(prior.denoiser, schedule, self.clip).to(device)
        timesteps = space_timesteps(schedule.num_train_timesteps, self.num_steps)
        if self.algorithm == "dps":
            solver = deepinv.sampling.DDPMSolver(timesteps=vp_times(schedule, timesteps).to(device), rng=generator)
            return deepinv.sampling.DPS(denoiser, solver=solver, device=device, **self.settings)
        if self.algorithm == "ddrm":
            levels = prior_noise_levels(schedule)[sorted(timesteps, reverse=True)] / 2.0  # on [0, 1]
            return deepinv.sampling.DDRM(denoiser, sigmas=levels.tolist(), **self.settings)
        return deepinv.sampling.DiffPIR(
            denoiser, deepinv.optim.data_fidelity.L2(), max_iter=self.num_steps, device=device, **self.settings
        )

    def reconstruct(self, problem, prior=None, retriever=None) -> Estimate:
        seed = problem.seed + 1
        generator = torch.Generator(device=problem.device).manual_seed(seed)
        sampler = self.sampler(prior, problem.device, generator)
        physics = deepinv_physics(problem.physics, problem.image_shape, self.noise_floor).to(problem.device)
        y = problem.y_in_unit_range()
        devices = [problem.device] if problem.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # DDRM and DiffPIR draw from the global generator
            torch.manual_seed(seed)
            if self.algorithm == "dps":
                x = sampler(y, physics, x_init=tuple(problem.image_shape))
            else:
                x = sampler(y, physics)
        if not torch.isfinite(x).all():
            raise FloatingPointError(f"deepinv {self.algorithm} returned non-finite values for {problem.image_id}")
        return Estimate(x.float().clamp(0.0, 1.0).cpu())

