"""SpecAugment-style masking of feature sequences (training-time regularisation).

Applied by a model only in ``train()`` mode, so inference is never changed. Random draws come from
torch's global generator, which the training engine seeds and checkpoints (resumes repeat them).
"""

from __future__ import annotations

import torch

__all__ = ["spec_augment"]


def spec_augment(x: torch.Tensor, lens: torch.Tensor, time_masks: int, time_width: int, time_frac: float,
                 freq_masks: int, freq_width: int) -> torch.Tensor:
    """Zero random time spans and channel bands of ``x [B, T, C]``.

    Each item gets ``time_masks`` spans of uniform width in ``[0, min(time_width, time_frac · len)]``
    frames placed inside its valid ``lens [B]`` frames, and ``freq_masks`` bands of uniform width in
    ``[0, freq_width]`` channels. Returns a new tensor; ``x`` is not modified.
    """
    b, t, c = x.shape
    if b == 0 or t == 0 or (time_masks <= 0 and freq_masks <= 0):
        return x
    keep = torch.ones(b, t, c, dtype=torch.bool, device=x.device)
    pos_t = torch.arange(t, device=x.device)
    pos_c = torch.arange(c, device=x.device)
    lens_f = lens.to(x.device).float().clamp(min=0)
    for _ in range(max(0, time_masks)):
        limit = torch.minimum(torch.full_like(lens_f, float(time_width)), (time_frac * lens_f).floor())
        width = (torch.rand(b, device=x.device) * (limit + 1)).floor()
        start = (torch.rand(b, device=x.device) * (lens_f - width + 1).clamp(min=1)).floor()
        span = (pos_t[None] >= start[:, None]) & (pos_t[None] < (start + width)[:, None])
        keep &= ~span[:, :, None]
    for _ in range(max(0, freq_masks)):
        width = (torch.rand(b, device=x.device) * (min(freq_width, c) + 1)).floor()
        start = (torch.rand(b, device=x.device) * (c - width + 1)).floor()
        band = (pos_c[None] >= start[:, None]) & (pos_c[None] < (start + width)[:, None])
        keep &= ~band[:, None, :]
    return x * keep.to(x.dtype)
