"""How a network executes: numeric precision, memory layout and compilation, with the arithmetic around it in fp32.

Precision (``precision``):

* ``"fp32"`` (default): IEEE fp32 everywhere, TF32 off for cuBLAS and cuDNN. This is the reference path. torch's
  own default runs cuDNN convolutions in TF32, so on an Ampere-or-later GPU this is *slower* than plain torch.
* ``"tf32"``: fp32 tensors, TF32 tensor-core math for CUDA matmuls and convolutions (10-bit mantissa products,
  fp32 accumulation). Nothing changes on a CPU.
* ``"bf16"``: the network runs under bf16 autocast (convolutions, matmuls and attention in bf16; autocast keeps
  normalisations and softmax in fp32); parameters, their gradients and optimiser state stay fp32.

Only the network sits inside the precision context: :class:`ExecutedDenoiser` returns ε and the variance values
as fp32, so the reverse step, the variance and the guidance term (A, Aᵀ, y) are fp32 under every setting.

``channels_last`` stores the network's 4-D weights (and the input) as NHWC, the layout GPU tensor-core convolutions
prefer. ``compile`` compiles the module in place with ``nn.Module.compile``: the module object, its parameters and
its state-dict keys stay the same (peft's adapter keys included), only its ``__call__`` goes through
``torch.compile``. ``True`` uses torch's default mode; a string picks a mode, e.g. ``"reduce-overhead"`` (CUDA
graphs) or ``"max-autotune"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, get_args

import torch
from torch import nn

from adir_exp.models.denoiser import Denoiser, DenoiserOutput

Precision = Literal["fp32", "tf32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


def check_precision(precision: str) -> Precision:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision  # type: ignore[return-value]


@contextmanager
def tf32_math(enabled: bool) -> Iterator[None]:
    """TF32 for CUDA matmuls and cuDNN convolutions on (or off) inside the block; the previous settings after it."""
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = matmul.fp32_precision, conv.fp32_precision
    mode = "tf32" if enabled else "ieee"
    matmul.fp32_precision, conv.fp32_precision = mode, mode
    try:
        yield
    finally:
        matmul.fp32_precision, conv.fp32_precision = saved


@contextmanager
def precision_context(precision: Precision, device: torch.device | str) -> Iterator[None]:
    """Run the block at ``precision`` (see the module docstring) on ``device``."""
    check_precision(precision)
    kind = torch.device(device).type
    with tf32_math(precision == "tf32"), torch.autocast(kind, dtype=torch.bfloat16, enabled=precision == "bf16"):
        yield


def prepare_network(network: nn.Module, channels_last: bool = False, compile: bool | str = False) -> nn.Module:
    """Convert ``network`` to channels-last and/or compile it, in place (same object, same state-dict keys)."""
    if channels_last:
        network.to(memory_format=torch.channels_last)
    if compile:
        network.compile(**({} if compile is True else {"mode": compile}))
    return network


class ExecutedDenoiser(Denoiser):
    """A denoiser run at ``precision``, channels-last and/or compiled, whose outputs have the input's dtype (fp32).

    For sampling: wrap the denoiser a sampler gets, and everything the sampler computes from ε and the variance
    values stays fp32. ``denoiser`` is prepared in place (:func:`prepare_network`) and stays reachable as
    ``inner``; its parameters keep their names under ``inner.``.
    """

    def __init__(
        self,
        denoiser: Denoiser,
        precision: Precision = "fp32",
        channels_last: bool = False,
        compile: bool | str = False,
    ) -> None:
        super().__init__()
        self.inner = prepare_network(denoiser, channels_last=channels_last, compile=compile)
        self.precision = check_precision(precision)
        self.channels_last = channels_last
        self.variance_type = denoiser.variance_type

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> DenoiserOutput:
        if self.channels_last:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        with precision_context(self.precision, x_t.device):
            out = self.inner(x_t, t)
        variance = out.variance_values
        return DenoiserOutput(
            eps=out.eps.to(x_t.dtype).contiguous(),
            variance_values=None if variance is None else variance.to(x_t.dtype).contiguous(),
        )
