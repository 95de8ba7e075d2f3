"""SAR-aware augmentation on normalised batches (seed_001): Gaussian blur, Gaussian noise added in dB,
motion blur, random crop + resize, flips; rotation (by 90 deg) off by default because SAR geometry
(look direction, layover/shadow side) is not rotation-invariant.

Geometric operations (flips, crop+resize, rotation) move image, label and weight together; photometric
ones (blur, noise, motion blur) touch only the SAR bands (terrain bands are exact) and never the label.
Noise is drawn in dB and divided by each band's training std, because the batch is already normalised.

With a :class:`BandLayout` (recipes with polarisation flags or both passes, issue 11) there is more, so
that a model does not lean on what changes from one event or product to the next:

* **left-right flip swaps the passes**: an ascending pass looks east, a descending one west; a mirrored
  ascending image is what a descending pass sees, so the two pass blocks trade places;
* **pass dropout** (a chip with both passes loses one: single-pass stacks, layover/shadow on one side),
  **polarisation dropout** (VV, more rarely VH, removed with its flag: single-pol stacks) and **terrain
  dropout** (slope replaced by its training mean: terrain is evidence, not the answer);
* **level offsets**: the pre-event levels shift by up to +-2 dB per chip and polarisation (GRD sigma0 vs
  RTC gamma0, sites, calibration), so the levels inform about context (water, layover) but not about the
  product that made them.

A removed band takes the normalised no-data value 0, exactly what inference gives a missing pass or
polarisation (NaN -> 0 after normalisation, flag 0).
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
    # with a BandLayout only
    p_pass_drop: float = 0.3
    p_pol_drop: float = 0.25
    p_vh_of_pol_drop: float = 0.25  # share of the polarisation dropouts that remove VH (VV-only stacks are rarer)
    p_terrain_drop: float = 0.4
    p_level: float = 0.5
    level_db: float = 2.0

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


@dataclass
class BandLayout:
    """Which band of a composite is what (built from a recipe by :meth:`from_recipe`)."""

    sar_db: list[int]  # bands in dB (noise, blur)
    levels: dict[tuple[str, str], list[int]]  # (pass, pol) -> level bands (*_pre, *_post...)
    pol_bands: dict[tuple[str, str], list[int]]  # (pass, pol) -> every band reading that polarisation
    avail: dict[tuple[str, str], int]  # (pass, pol) -> its avail flag
    terrain: list[int]
    swap: list[int] | None  # band permutation exchanging the two pass blocks (joint recipes)

    @classmethod
    def from_recipe(cls, recipe) -> BandLayout:
        from landslide_sar_plugin.core.recipes import TERRAIN_TOKENS, split_token, token_polarisation

        sar_db, levels, pol_bands, avail, terrain = [], {}, {}, {}, []
        index = {}
        for i, token in enumerate(recipe.bands):
            orbit_pass, t = split_token(token)
            key_pass = orbit_pass or "any"
            index[(key_pass, t)] = i
            if t in TERRAIN_TOKENS:
                terrain.append(i)
                continue
            pol = token_polarisation(token)
            if t.startswith("avail_"):
                avail[(key_pass, pol)] = i
                continue
            sar_db.append(i)
            pol_bands.setdefault((key_pass, pol), []).append(i)
            if not t.startswith(("ratio_", "dratio_")) and not t.endswith("_diff"):
                levels.setdefault((key_pass, pol), []).append(i)
        swap = None
        if recipe.joint_passes:
            swap = list(range(len(recipe.bands)))
            for (p, t), i in index.items():
                if p == "ASCENDING":
                    j = index[("DESCENDING", t)]
                    swap[i], swap[j] = j, i
        return cls(sar_db, levels, pol_bands, avail, terrain, swap)

    def passes(self) -> list[str]:
        return sorted({p for p, _ in self.pol_bands})

    def polarisations(self) -> list[str]:
        return sorted({q for _, q in self.pol_bands})


class Augmenter:
    """Apply :class:`AugmentConfig` to a batch ``x (N, C, H, W)``, ``y (N, 1, H, W)``, ``w (N, 1, H, W)``."""

    def __init__(self, config: AugmentConfig, sar_bands: Sequence[int], band_std_db: Sequence[float],
                 layout: BandLayout | None = None):
        self.cfg = config
        self.layout = layout
        self.sar = list(layout.sar_db if layout is not None else sar_bands)
        self.std = torch.tensor([float(band_std_db[b]) for b in self.sar], dtype=torch.float32)
        self.band_std = [float(v) for v in band_std_db]

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
                if dims == (3,) and self.layout is not None and self.layout.swap is not None:
                    x[idx] = x[idx][:, self.layout.swap]  # mirrored east-looking = west-looking
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
        if self.layout is not None:
            self._drop_and_shift(x, w, gen)
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
        if self.layout is not None:
            self.rezero_missing(x)
        return x, y, w

    def rezero_missing(self, x) -> None:
        """Bands of a missing pass/polarisation back to exactly 0 (blur and noise touched them)."""
        for key, k in self.layout.avail.items():
            bands = self.layout.pol_bands.get(key, [])
            if bands:
                there = x[:, k:k + 1] > 0.5
                x[:, bands] = torch.where(there, x[:, bands], torch.zeros_like(x[:, bands]))

    # ---- pass / polarisation / terrain dropout and level offsets (BandLayout only)

    def _drop_and_shift(self, x, w, gen: torch.Generator) -> None:
        lay, cfg, n = self.layout, self.cfg, x.shape[0]

        def present(i, p, q):
            k = lay.avail.get((p, q))
            return k is None or bool((x[i, k] > 0.5).any())

        rand = torch.rand(n, 6, generator=gen)
        passes, pols = lay.passes(), lay.polarisations()
        for i in range(n):
            have = [p for p in passes if any(present(i, p, q) for q in pols)]
            if len(have) > 1 and rand[i, 0] < cfg.p_pass_drop:
                gone = have[int(rand[i, 1] * len(have)) % len(have)]
                for q in pols:
                    self._blank(x, i, gone, q)
            if len(pols) > 1 and rand[i, 2] < cfg.p_pol_drop:
                q = "VH" if rand[i, 3] < cfg.p_vh_of_pol_drop else "VV"
                other = [o for o in pols if o != q][0]
                if all(present(i, p, other) for p in passes if any(present(i, p, qq) for qq in pols)):
                    for p in passes:
                        self._blank(x, i, p, q)
            if lay.terrain and rand[i, 4] < cfg.p_terrain_drop:
                x[i, lay.terrain] = 0.0
            if rand[i, 5] < cfg.p_level:
                shifts = (torch.rand(len(lay.levels), generator=gen) * 2 - 1) * cfg.level_db
                for (key, bands), shift in zip(sorted(lay.levels.items()), shifts):
                    k = lay.avail.get(key)
                    there = (x[i, k] > 0.5).to(x.dtype) if k is not None else 1.0
                    for b in bands:
                        x[i, b] += there * (float(shift) / self.band_std[b])
        if lay.avail:
            known = torch.zeros_like(w, dtype=torch.bool)
            for k in lay.avail.values():
                known |= x[:, k:k + 1] > 0.5
            w *= known.to(w.dtype)  # no pass or polarisation left: inference does not predict there

    def _blank(self, x, i: int, orbit_pass: str, pol: str) -> None:
        lay = self.layout
        bands = lay.pol_bands.get((orbit_pass, pol), [])
        if bands:
            x[i, bands] = 0.0
        k = lay.avail.get((orbit_pass, pol))
        if k is not None:
            x[i, k] = 0.0
