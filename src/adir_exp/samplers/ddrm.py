"""DDRM (Kawar et al., 2022, "Denoising Diffusion Restoration Models") as a baseline: posterior sampling in the
operator's spectral domain, the paper's DDRM rows in Tables 2 and 5."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from adir_exp.samplers.base import Measurement, Sampler, StepOutput


@dataclass
class Spectrum:
    """The measurement in the operator's singular basis, in Vᵀx's layout (see :mod:`adir_exp.operators.base`)."""

    sigma: torch.Tensor  # singular values, (1, C, H, W); 0 where A loses the direction (or σ ≤ the cut-off)
    u_y: torch.Tensor  # Uᵀy, zero-padded to (B, C, H, W)
    y_bar: torch.Tensor  # Σ⁺Uᵀy: the measurement's estimate of each observed coefficient of x0


class DDRMSampler(Sampler):
    """DDRM's η-sampler (the official ``efficient_generalized_steps``), with σ_y = ``measurement.noise_std``.

    DDRM works with x̄_t = Vᵀ(x_t/√ᾱ_t) = Vᵀx0 + σ_t Vᵀε, σ_t = √(1−ᾱ_t)/√ᾱ_t. Given x̂0 and ε from the model and the
    next level σ' (0 at the last step), each coefficient i, with singular value σ_i and ȳ_i = (Uᵀy)_i/σ_i, is
    drawn as

    * missing (σ_i = 0): x̂0_i + √(1−η²)σ'·(Vᵀε)_i + ησ'z,
    * less noisy than y (σ_iσ' < σ_y): x̂0_i + √(1−η²)σ'·((Uᵀy)_i − σ_i x̂0_i)/σ_y + ησ'z,
    * noisier than y (σ_iσ' > σ_y): η_b ȳ_i + (1−η_b) x̂0_i + √(σ'² − η_b²σ_y²/σ_i²)·z,

    and x_{t−1} = √ᾱ_{t−1} V x̄_{t−1}; the last step returns x̂0. x_T is drawn from DDRM's p(x_T | y): ȳ_i plus
    noise up to σ_T where σ_iσ_T > σ_y, pure noise σ_T elsewhere.

    Facts taken from the official code (github.com/bahjat-kawar/ddrm, ``functions/denoising.py`` and
    ``runners/diffusion.py``): defaults η = 0.85 (its η_A = η_C) and η_b = 1; σ_0 is given on [0, 1] and doubled
    for the model's [−1, 1] (``args.sigma_0 = 2 * args.sigma_0``), which is what ``noise_std`` already holds; x̂0
    is not clipped (``clip_denoised`` defaults to False); only ε is used, a learned-variance head is ignored.

    Differences from the official code: the steps are guided-diffusion's respacing (``num_steps=20`` visits
    t = 999 … 0; ``"ddim20"`` visits the official 0, 50, …, 950); x_T is √ᾱ_T·V x̄_T (the official code divides by
    σ_T, 1/√(1−ᾱ_T) ≈ 1 + 2·10⁻⁵ larger); σ_i ≤ ``singular_cutoff`` counts as missing (the official code zeroes
    per-axis σ below 3·10⁻² for blurs, which it then treats as "less noisy"; nothing is cut for SR ×4/×8, whose
    σ_i ≥ 0.06). The cut-off guards the noiseless case, where ȳ_i = (Uᵀy)_i/σ_i amplifies round-off.

    Known DDRM behaviour with noisy blurs: in a weak direction (σ_i ≪ σ_y) the "less noisy" rule injects
    (Uᵀy)_i/σ_y, almost only y's noise, which is the same at every step and for every sample, so it biases the
    result like a fixed latent. On the Gaussian-prior test (σ_blur = 1, σ = 10) the sample mean is 0.65 of the
    prior-to-posterior distance away with the default cut-off and 0.31 with ``singular_cutoff=0.1``.
    """

    needs_measurement = True

    def __init__(
        self,
        *args,
        num_steps: int | str | None = 20,
        clip_denoised: bool = False,
        eta: float = 0.85,
        eta_b: float = 1.0,
        singular_cutoff: float = 1e-3,
        **kwargs,
    ):
        super().__init__(*args, num_steps=num_steps, clip_denoised=clip_denoised, **kwargs)
        if not 0.0 <= eta <= 1.0 or not 0.0 <= eta_b <= 1.0:
            raise ValueError(f"DDRM needs 0 ≤ eta ≤ 1 and 0 ≤ eta_b ≤ 1, got eta={eta}, eta_b={eta_b}")
        self.eta = eta
        self.eta_b = eta_b
        self.singular_cutoff = singular_cutoff

    def spectrum(self, measurement: Measurement, like: torch.Tensor) -> Spectrum:
        operator = measurement.operator
        image_shape = (like.shape[0], *operator.image_shape(measurement.y.shape)[1:])
        sigma = operator.singular_values(image_shape).to(like)[None]
        sigma = torch.where(sigma > self.singular_cutoff, sigma, 0.0)
        u_y = operator.to_image_spectrum(operator.U_adjoint(measurement.y.to(like)), image_shape)
        y_bar = torch.where(sigma > 0, u_y / torch.where(sigma > 0, sigma, 1.0), 0.0)
        return Spectrum(sigma, u_y, y_bar)

    @staticmethod
    def _sigma(alpha_bar: torch.Tensor) -> float:
        """DDRM's noise level σ = √(1−ᾱ)/√ᾱ of x_t/√ᾱ."""
        return float(((1.0 - alpha_bar) / alpha_bar).sqrt())

    @staticmethod
    def _from_y(spectrum: Spectrum, level: float, sigma_y: float, eta_b: float, z: torch.Tensor) -> torch.Tensor:
        """η_b ȳ + √(σ'² − η_b²σ_y²/σ_i²)·z: the measurement's coefficients topped up with noise to level σ'."""
        safe = torch.where(spectrum.sigma > 0, spectrum.sigma, 1.0)
        std = (level**2 - (eta_b * sigma_y / safe) ** 2).clamp_min(0.0).sqrt()
        return eta_b * spectrum.y_bar + std * z

    def initial_sample(
        self,
        shape: tuple[int, ...],
        measurement: Measurement,
        generator: torch.Generator | None,
        device: torch.device | str,
    ) -> torch.Tensor:
        """x_T from DDRM's p(x_T | y): ȳ plus noise to σ_T where the measurement is less noisy than x_T (no η_b
        here, as in the official code), pure noise elsewhere."""
        z = torch.randn(shape, generator=generator, device=device)
        spectrum = self.spectrum(measurement, z)
        abar = self.process.alphas_cumprod[-1]
        sigma_T, sigma_y = self._sigma(abar), measurement.noise_std
        informative = (spectrum.sigma > 0) & (spectrum.sigma * sigma_T > sigma_y)
        x_bar = torch.where(informative, self._from_y(spectrum, sigma_T, sigma_y, 1.0, z), sigma_T * z)
        return float(abar.sqrt()) * measurement.operator.V(x_bar)

    def sample(
        self,
        shape: tuple[int, ...],
        measurement: Measurement | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        x_T: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """As ``Sampler.sample``, but x_T is drawn given y (DDRM's initialisation) unless given."""
        if x_T is None and measurement is not None:
            measurement.operator.check_measurement(measurement.y, tuple(shape))
            x_T = self.initial_sample(shape, measurement, generator, device)
        return super().sample(shape, measurement, generator, device, x_T)

    @torch.no_grad()
    def step(self, x_t: torch.Tensor, index: int, measurement: Measurement | None, generator) -> StepOutput:
        operator, sigma_y = measurement.operator, measurement.noise_std
        t = self.process.model_timestep(index, x_t.shape[0], x_t.device)
        eps = self.denoiser(x_t, t).eps
        abar = self.process.alphas_cumprod[index]
        pred_x0 = self.process.predict_x0(x_t, eps, index)
        if self.clip_denoised:
            pred_x0 = pred_x0.clamp(-1.0, 1.0)
            eps = (x_t - float(abar.sqrt()) * pred_x0) / float((1.0 - abar).sqrt())  # the ε that clipped x̂0 implies

        abar_next = self.process.alphas_cumprod_prev[index]
        sigma_next = self._sigma(abar_next)
        spectrum = self.spectrum(measurement, x_t)
        x0_bar, eps_bar = operator.V_adjoint(pred_x0), operator.V_adjoint(eps)
        z = self.noise_like(x_t, generator)
        kept = (1.0 - self.eta**2) ** 0.5 * sigma_next
        fresh = self.eta * sigma_next * z

        x_bar = x0_bar + kept * eps_bar + fresh  # missing
        observed = spectrum.sigma > 0
        if sigma_y > 0:
            less_noisy = observed & (spectrum.sigma * sigma_next < sigma_y)
            from_residual = x0_bar + kept * (spectrum.u_y - spectrum.sigma * x0_bar) / sigma_y + fresh
            x_bar = torch.where(less_noisy, from_residual, x_bar)
        noisier = observed & (spectrum.sigma * sigma_next > sigma_y)
        from_y = self._from_y(spectrum, sigma_next, sigma_y, self.eta_b, z) + (1.0 - self.eta_b) * x0_bar
        x_bar = torch.where(noisier, from_y, x_bar)
        return StepOutput(float(abar_next.sqrt()) * operator.V(x_bar), pred_x0)
