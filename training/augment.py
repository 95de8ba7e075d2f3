"""SAR-aware augmentation on normalised batches (seed_001): Gaussian blur, Gaussian noise added in dB,
motion blur, random crop + resize, flips; rotation (by 90 deg) off by default because SAR geometry
(look direction, layover/shadow side) is not rotation-invariant.

Geometric operations (flips, crop+resize, rotation) move image, label and weight together; photometric
ones (blur, noise, motion blur) touch only the SAR bands (terrain bands are exact) and never the label.
Noise is drawn in dB and divided by each band's training std, because the batch is already normalised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F  # noqa: N812 (PyTorch convention)


@dataclass
class AugmentConfig:
    p_flip: float = 0.5
    p_blur: float = 0.25
    blur_sigma: tuple[float, float] = (0.5, 1.2)  # pixels
    p_noise: float = 0.5
    noise_db: tuple[float, float] = (0.2, 1.0)  # std of the added noise, dB
    p_motion: float = 0.2
    motion_length: tuple[int, int] = (3, 7)  # pixels (odd)
    p_crop: float = 0.3
    crop_scale: tuple[float, float] = (0.6, 1.0)  # side of the crop / side of the chip
    rotate: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def _depthwise(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = kernel.to(x.dtype)
    ky, kx = k.shape
    xp = F.pad(x, (kx // 2, kx // 2, ky // 2, ky // 2), mode="reflect")
    return F.conv2d(xp, k.expand(c, 1, ky, kx), groups=c)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    r = max(1, int(math.ceil(2.5 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    return g[:, None] * g[None, :]


def motion_kernel(length: int, angle_index: int) -> torch.Tensor:
    """A normalised line of ``length`` pixels: 0 horizontal, 1 vertical, 2/3 the diagonals."""
    k = torch.zeros(length, length)
    mid = length // 2
    if angle_index == 0:
        k[mid, :] = 1
    elif angle_index == 1:
        k[:, mid] = 1
    elif angle_index == 2:
        k = torch.eye(length)
    else:
        k = torch.flip(torch.eye(length), dims=[1])
    return k / k.sum()


class Augmenter:
    """Apply :class:`AugmentConfig` to a batch ``x (N, C, H, W)``, ``y (N, 1, H, W)``, ``w (N, 1, H, W)``."""

    def __init__(self, config: AugmentConfig, sar_bands: Sequence[int], band_std_db: Sequence[float]):
        self.cfg = config
        self.sar = list(sar_bands)
        self.std = torch.tensor([float(band_std_db[b]) for b in self.sar], dtype=torch.float32)

    def __call__(self, x, y, w, gen: torch.Generator):
        x, y, w = x.clone(), y.clone(), w.clone()
        n = x.shape[0]
        cfg = self.cfg

        def coin(p):
            return torch.rand(n, generator=gen) < p

        # ---- geometric: the same transform for image, label, weight
        for dims, flag in (((3,), coin(cfg.p_flip)), ((2,), coin(cfg.p_flip))):
            if flag.any():
                idx = flag.nonzero().flatten()
                x[idx] = torch.flip(x[idx], dims)
                y[idx] = torch.flip(y[idx], dims)
                w[idx] = torch.flip(w[idx], dims)
        if cfg.rotate:
            k = torch.randint(0, 4, (n,), generator=gen)
            for i in range(n):
                if k[i]:
                    x[i], y[i], w[i] = (torch.rot90(a[i], int(k[i]), dims=(1, 2)) for a in (x, y, w))
        crop = coin(cfg.p_crop)
        if crop.any():
            idx = crop.nonzero().flatten()
            m = idx.numel()
            lo, hi = cfg.crop_scale
            s = lo + (hi - lo) * torch.rand(m, generator=gen)
            tx = (1 - s) * (2 * torch.rand(m, generator=gen) - 1)
            ty = (1 - s) * (2 * torch.rand(m, generator=gen) - 1)
            theta = torch.zeros(m, 2, 3)
            theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = s, s, tx, ty
            grid = F.affine_grid(theta, list(x[idx].shape), align_corners=False)
            x[idx] = F.grid_sample(x[idx], grid, mode="bilinear", padding_mode="border", align_corners=False)
            y[idx] = F.grid_sample(y[idx], grid, mode="nearest", padding_mode="border", align_corners=False)
            w[idx] = F.grid_sample(w[idx], grid, mode="nearest", padding_mode="border", align_corners=False)
        if not self.sar:
            return x, y, w
        # ---- photometric on SAR bands only
        sar = x[:, self.sar]
        blur = coin(cfg.p_blur)
        for i in blur.nonzero().flatten().tolist():
            lo, hi = cfg.blur_sigma
            sigma = lo + (hi - lo) * float(torch.rand(1, generator=gen))
            sar[i:i + 1] = _depthwise(sar[i:i + 1], gaussian_kernel(sigma))
        motion = coin(cfg.p_motion)
        for i in motion.nonzero().flatten().tolist():
            lo, hi = cfg.motion_length
            length = int(torch.randint(lo, hi + 1, (1,), generator=gen)) | 1
            angle = int(torch.randint(0, 4, (1,), generator=gen))
            sar[i:i + 1] = _depthwise(sar[i:i + 1], motion_kernel(length, angle))
        noise = coin(cfg.p_noise)
        if noise.any():
            idx = noise.nonzero().flatten()
            lo, hi = cfg.noise_db
            sd_db = lo + (hi - lo) * torch.rand(idx.numel(), 1, 1, 1, generator=gen)
            eps = torch.randn(sar[idx].shape, generator=gen)
            sar[idx] = sar[idx] + eps * sd_db / self.std.view(1, -1, 1, 1)
        x[:, self.sar] = sar
        return x, y, w
