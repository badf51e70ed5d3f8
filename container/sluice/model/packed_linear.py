"""Linear layers with their weights pre-packed for oneDNN: the CPU's fast matmul path.

``nn.Linear`` on a CPU hands oneDNN/MKL a plain row-major weight and pays a reorder into the
kernel's blocked layout on every call; packing once at load time skips it. Measured on this
2-core CPU (avx512_bf16), per matmul: 1.2-2.7x faster in bf16 with bit-identical results, 1.5-2.3x
in float32 with results within 4e-6 (a different kernel sums in a different order). Decode steps
are mostly these matmuls: whole bf16 decode steps of the small demo model ran 1.1-1.24x faster
in an interleaved A/B (README "Performance").

Only the forward pass changes: the modules keep ``in_features``/``out_features``, and a tied
output layer (``lm_head`` sharing the embedding) gets its own packed copy while the embedding
keeps the original (vocabulary x hidden more memory). CUDA models are never touched.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger("sluice.loading")

PACKABLE_DTYPES = (torch.float32, torch.bfloat16)


class PackedLinear(nn.Module):
    """``y = x W^T + b`` through oneDNN with ``W`` in the kernel's own layout."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach()
        self.register_buffer("packed_weight", torch.ops.mkldnn._reorder_linear_weight(weight, None),
                             persistent=False)
        bias = None if linear.bias is None else linear.bias.detach()
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        out = torch.ops.mkldnn._linear_pointwise(flat, self.packed_weight, self.bias, "none", [], "")
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed for oneDNN"


def pack_linear_layers(model: nn.Module, device: torch.device) -> str:
    """Pack every plain ``nn.Linear`` of a CPU model in place; what was done, for the log and /info.

    One layer is packed and checked against its plain result first: a torch build whose oneDNN
    cannot pack (or packs wrongly) leaves the model as it was instead of failing the load.
    """
    reason = _unavailable(model, device)
    linears = [(parent, name, child) for parent in model.modules()
               for name, child in parent.named_children()
               if type(child) is nn.Linear]  # not subclasses: quantised layers keep their kernels
    if reason is None and not linears:
        reason = "no nn.Linear layers"
    if reason is None:
        try:
            _check(PackedLinear(linears[0][2]), linears[0][2])
        except Exception as error:  # noqa: BLE001 - any failure means: keep the plain layers
            log.warning("linear weights not packed for oneDNN: %s", error)
            reason = f"packing failed: {error}"
    if reason is not None:
        return f"nn.Linear ({reason})"
    for parent, name, child in linears:
        setattr(parent, name, PackedLinear(child))
    return f"oneDNN-packed ({len(linears)} linear layers)"


def _unavailable(model: nn.Module, device: torch.device) -> str | None:
    if device.type != "cpu":
        return f"{device.type}: its own kernels"
    if not torch.backends.mkldnn.is_available():
        return "this torch build has no oneDNN"
    dtype = getattr(model, "dtype", None) or next((p.dtype for p in model.parameters()), None)
    if dtype not in PACKABLE_DTYPES:
        return f"{str(dtype).replace('torch.', '')} is not packed"
    return None


def _check(packed: PackedLinear, reference: nn.Linear) -> None:
    probe = torch.randn(3, reference.in_features, generator=torch.Generator().manual_seed(0))
    probe = probe.to(reference.weight.dtype)
    with torch.inference_mode():
        expected, got = reference(probe).float(), packed(probe).float()
    tolerance = 1e-2 if reference.weight.dtype == torch.bfloat16 else 1e-4
    if not torch.allclose(expected, got, atol=tolerance, rtol=tolerance):
        raise RuntimeError(f"packed result differs from nn.Linear by {(expected - got).abs().max():.3g}")
