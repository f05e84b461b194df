"""Image-quality metrics on uint8 frames: PSNR, SSIM and detail (spatial gradient), per frame, batched;
and the view's shift from frame to frame (phase correlation)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor


def psnr(a: Tensor, b: Tensor, max_value: float = 255.0) -> Tensor:
    """PSNR in dB between frames a, b [..., H, W, C] (uint8 or float in [0,255]) -> [...].

    Identical frames give +inf; average per-frame values, or clamp, before reporting.
    """
    mse = (a.float() - b.float()).pow(2).mean(dim=(-3, -2, -1))
    return 10 * torch.log10(max_value**2 / mse)


def mean_psnr(a: Tensor, b: Tensor, cap: float = 100.0) -> float:
    """Mean per-frame PSNR with perfect frames capped at `cap` dB (one host sync)."""
    return float(psnr(a, b).clamp(max=cap).mean())


def _gaussian_window(size: int, sigma: float, device) -> Tensor:
    x = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a: Tensor, b: Tensor, max_value: float = 255.0, window: int = 11, sigma: float = 1.5) -> Tensor:
    """SSIM (Wang et al. 2004; Gaussian window, per channel, 'valid' region) of a, b [..., H, W, C] -> [...]."""
    lead = a.shape[:-3]
    x = rearrange(a.float(), "... h w c -> (...) c h w")
    y = rearrange(b.float(), "... h w c -> (...) c h w")
    c = x.shape[1]
    w = _gaussian_window(min(window, x.shape[-1], x.shape[-2]), sigma, x.device).expand(c, 1, -1, -1)
    c1, c2 = (0.01 * max_value) ** 2, (0.03 * max_value) ** 2

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, w, groups=c)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean(dim=(-3, -2, -1)).reshape(lead)


def detail(frames: Tensor) -> Tensor:
    """Mean spatial gradient of frames [..., H, W, C] (uint8 or float in [0,255]) -> [...]: the mean
    absolute difference between horizontally and vertically adjacent pixels of the luma, in gray
    levels. A frame that melts into flat patches loses it; `genie eval` reports generated / real."""
    luma = (frames.float() * torch.tensor([0.299, 0.587, 0.114], device=frames.device)).sum(-1)  # [..., H, W]
    dx = (luma[..., :, 1:] - luma[..., :, :-1]).abs().mean(dim=(-2, -1))
    dy = (luma[..., 1:, :] - luma[..., :-1, :]).abs().mean(dim=(-2, -1))
    return (dx + dy) / 2


MIN_RESPONSE = 0.1  # phase-correlation peaks below this are noise, not a shift of the scene


def view_shift(frames: np.ndarray, min_response: float = MIN_RESPONSE) -> np.ndarray:
    """The global shift of each frame's content from the frame before: frames [..., T, H, W, C]
    (uint8 or float) -> float32 [..., T-1, 2] as (dx, dy) in px, x right, y down (content that
    moved 3 px right reads dx = +3; a view that follows a player moving right shows dx < 0).

    By phase correlation (cv2.phaseCorrelate, Hanning-windowed, sub-pixel) of the frames' channel
    mean; (0, 0) where the correlation peak's response is below `min_response` (no one shift
    explains the change, e.g. a cut, or a frame that melted)."""
    import cv2

    gray = np.asarray(frames, np.float32).mean(-1)  # [..., T, H, W]
    *lead, t, h, w = gray.shape
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    flat = gray.reshape(-1, t, h, w)
    shift = np.zeros((len(flat), max(t - 1, 0), 2), np.float32)
    for i, j in np.ndindex(len(flat), max(t - 1, 0)):
        # copies: OpenCV 5's phaseCorrelate multiplies its first input by the window in place
        (dx, dy), response = cv2.phaseCorrelate(flat[i, j].copy(), flat[i, j + 1].copy(), window)
        if response >= min_response:
            shift[i, j] = dx, dy
    return shift.reshape(*lead, max(t - 1, 0), 2)
