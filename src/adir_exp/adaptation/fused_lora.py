"""LoRA layers that run one convolution (or matmul) per call: W_eff = W + (α/r)·B·A, formed on every forward.

peft's LoRA layer computes ``base(x) + s·B(A(x))``: two more convolutions, a scale and an addition over the whole
output per adapted layer, and in backward the matching input gradients and a sum of two of them. Here the
adapter is folded into the weight each call (a matmul of the size of the weight, negligible next to the
convolution) and the layer runs ONE convolution; the output is the same function of x, A and B.

Autograd through W_eff would be exact but would form the full weight gradient ∂L/∂W_eff, i.e. the cost of full
fine-tuning. The backward pass is written by hand instead and stays in the rank-r space, as peft's does
(g = ∂L/∂y, s = α/r):

    ∂L/∂x = conv_input_grad(g, W_eff)           one convolution, as in a frozen network
    ∂L/∂A = conv_weight_grad(x, s·Bᵀg)          rank-r channels
    ∂L/∂B = s · Σ_pixels g ⊗ A(x)               A(x) recomputed here instead of kept from forward

The layers are peft's own ``lora.Conv2d`` / ``lora.Linear`` with another ``forward``, registered through peft's
custom-module mapping: parameters, ``get_peft_model_state_dict`` keys, ``merge`` and loading are peft's. Anything
peft does that is not one plain adapter (adapters disabled, merged, per-sample ``adapter_names``) goes through
peft's own forward. Under autocast the layer computes in the autocast dtype (W_eff formed in the parameters'
dtype, then cast) and returns gradients in the parameters' dtypes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from peft import LoraConfig
from peft.tuners import lora
from torch import nn


class LoRAFusionError(ValueError):
    """A LoRA layer whose function is not one convolution with a folded weight (or fusion was asked with dropout)."""


def unfusable_reason(layer: nn.Module, dropout: float) -> str | None:
    """Why LoRA on ``layer`` cannot be computed exactly as one call with W + s·B·A, or None if it can.

    peft's adapter convolution A copies the base layer's kernel, stride and padding but not its dilation, groups
    or padding mode, so only layers where those are the defaults fold exactly. Dropout acts on A's input, which a
    folded weight cannot reproduce.
    """
    if dropout > 0:
        return f"lora dropout {dropout} acts on the adapter's input, which a folded weight cannot reproduce"
    if isinstance(layer, nn.Conv2d):
        if layer.groups != 1 or layer.dilation != (1, 1):
            return f"groups={layer.groups}, dilation={layer.dilation} (peft's adapter ignores both)"
        if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            return f"padding={layer.padding!r}, padding_mode={layer.padding_mode!r} (needs explicit zero padding)"
        return None
    if isinstance(layer, nn.Linear):
        return None
    return f"{type(layer).__name__} is neither Conv2d nor Linear"


def effective_weight(weight: torch.Tensor, lora_a: torch.Tensor, lora_b: torch.Tensor, scaling: float) -> torch.Tensor:
    """W + s·B·A with A, B as peft stores them (conv: A (r, in, k, k), B (out, r, 1, 1); linear: A (r, in), B (out, r)).

    In the adapters' dtype (peft keeps them fp32 on a half-precision base). One ``addmm``: on a CPU, separate scale
    and add kernels over a weight-sized tensor cost more than the product.
    """
    flat = weight.reshape(weight.shape[0], -1).to(lora_a.dtype)
    return torch.addmm(flat, lora_b.flatten(1), lora_a.flatten(1), alpha=scaling).view(weight.shape)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the layer computes in: autocast's for this device when it is on, else the input's."""
    kind = x.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else x.dtype


class _FusedConv2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x, weight, bias, lora_a, lora_b, scaling: float, stride, padding) -> torch.Tensor:
        dtype = compute_dtype(x)
        with torch.autocast(x.device.type, enabled=False):
            x = x.to(dtype)
            w = effective_weight(weight, lora_a, lora_b, scaling).to(dtype)
            out = F.conv2d(x, w, None if bias is None else bias.to(dtype), stride, padding)
        ctx.save_for_backward(x, weight, lora_a, lora_b)
        ctx.scaling, ctx.stride, ctx.padding = scaling, stride, padding
        ctx.bias_shape = None if bias is None else list(bias.shape)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        x, weight, lora_a, lora_b = ctx.saved_tensors
        need_x, need_w, need_bias, need_a, need_b = ctx.needs_input_grad[:5]
        s, stride, padding = ctx.scaling, ctx.stride, ctx.padding
        grad = grad.to(x.dtype)
        a, b = lora_a.to(x.dtype), lora_b.to(x.dtype)
        grad_x = grad_w = grad_bias = grad_a = grad_b = None
        with torch.autocast(x.device.type, enabled=False):
            if need_x or need_w or need_bias:
                w = effective_weight(weight, lora_a, lora_b, s).to(x.dtype)
                grad_x, grad_w, grad_bias = torch.ops.aten.convolution_backward(
                    grad, x, w, ctx.bias_shape if need_bias else None, stride, padding, (1, 1), False, (0, 0), 1,
                    [need_x, need_w, need_bias],
                )
            if need_a or need_b:
                g = grad.flatten(2)  # (N, out, H'W'), a view in NCHW and in channels-last
            if need_a:
                grad_r = (s * b.flatten(1).T @ g).view(grad.shape[0], -1, *grad.shape[2:])  # s·Bᵀg: (N, r, H', W')
                grad_a = torch.ops.aten.convolution_backward(
                    grad_r, x, a, None, stride, padding, (1, 1), False, (0, 0), 1, [False, True, False]
                )[1]
            if need_b:
                ax = F.conv2d(x, a, None, stride, padding).flatten(2)  # A(x): (N, r, H'W')
                grad_b = (s * torch.bmm(g, ax.transpose(1, 2)).sum(0)).view(b.shape)
        return (
            grad_x,
            None if grad_w is None else grad_w.to(weight.dtype),
            None if grad_bias is None else grad_bias.to(weight.dtype),
            None if grad_a is None else grad_a.to(lora_a.dtype),
            None if grad_b is None else grad_b.to(lora_b.dtype),
            None,
            None,
            None,
        )


class _FusedLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x, weight, bias, lora_a, lora_b, scaling: float) -> torch.Tensor:
        dtype = compute_dtype(x)
        with torch.autocast(x.device.type, enabled=False):
            x = x.to(dtype)
            w = effective_weight(weight, lora_a, lora_b, scaling).to(dtype)
            out = F.linear(x, w, None if bias is None else bias.to(dtype))
        ctx.save_for_backward(x, weight, lora_a, lora_b)
        ctx.scaling = scaling
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        x, weight, lora_a, lora_b = ctx.saved_tensors
        need_x, need_w, need_bias, need_a, need_b = ctx.needs_input_grad[:5]
        s = ctx.scaling
        g = grad.to(x.dtype).reshape(-1, grad.shape[-1])  # (M, out)
        x2 = x.reshape(-1, x.shape[-1])  # (M, in)
        a, b = lora_a.to(x.dtype), lora_b.to(x.dtype)
        grad_x = grad_w = grad_bias = grad_a = grad_b = None
        with torch.autocast(x.device.type, enabled=False):
            if need_x:
                grad_x = (g @ effective_weight(weight, lora_a, lora_b, s).to(x.dtype)).view(x.shape)
            if need_w:
                grad_w = (g.T @ x2).to(weight.dtype)
            if need_bias:
                grad_bias = g.sum(0).to(weight.dtype)
            if need_a:
                grad_a = ((g @ (s * b)).T @ x2).to(lora_a.dtype)
            if need_b:
                grad_b = (s * (g.T @ (x2 @ a.T))).to(lora_b.dtype)
        return grad_x, grad_w, grad_bias, grad_a, grad_b, None


class _FusedForward:
    """The part both fused layers share: which adapter, if any, the fused path may serve."""

    def _fused_adapter(self, kwargs: dict[str, Any]) -> str | None:
        if self.disable_adapters or self.merged or kwargs.get("adapter_names") is not None:
            return None
        active = [name for name in self.active_adapters if name in self.lora_A]
        return active[0] if len(active) == 1 else None

    @staticmethod
    def _refuse_unfusable(base_layer: nn.Module, config: LoraConfig) -> None:
        if config.use_dora or config.lora_bias:
            raise LoRAFusionError("fused LoRA supports plain adapters only (no DoRA, no lora_bias)")
        reason = unfusable_reason(base_layer, config.lora_dropout)
        if reason:
            raise LoRAFusionError(f"cannot fuse LoRA on this {type(base_layer).__name__}: {reason}; use fused=False")


class FusedLoraConv2d(_FusedForward, lora.Conv2d):
    """peft's ``lora.Conv2d`` computing conv(x, W + s·B·A) in one convolution (see the module docstring)."""

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: LoraConfig, **kwargs: Any) -> None:
        self._refuse_unfusable(base_layer, config)
        super().__init__(base_layer, adapter_name, config=config, **kwargs)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        adapter = self._fused_adapter(kwargs)
        if adapter is None:
            return super().forward(x, *args, **kwargs)
        base = self.get_base_layer()
        a, b = self.lora_A[adapter].weight, self.lora_B[adapter].weight
        return _FusedConv2dFunction.apply(x, base.weight, base.bias, a, b, self.scaling[adapter], base.stride, base.padding)


class FusedLoraLinear(_FusedForward, lora.Linear):
    """peft's ``lora.Linear`` computing linear(x, W + s·B·A) in one matmul (see the module docstring)."""

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: LoraConfig, **kwargs: Any) -> None:
        self._refuse_unfusable(base_layer, config)
        super().__init__(base_layer, adapter_name, config=config, **kwargs)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        adapter = self._fused_adapter(kwargs)
        if adapter is None:
            return super().forward(x, *args, **kwargs)
        base = self.get_base_layer()
        a, b = self.lora_A[adapter].weight, self.lora_B[adapter].weight
        return _FusedLinearFunction.apply(x, base.weight, base.bias, a, b, self.scaling[adapter])


FUSED_LAYERS: dict[type[nn.Module], type[nn.Module]] = {nn.Conv2d: FusedLoraConv2d, nn.Linear: FusedLoraLinear}
