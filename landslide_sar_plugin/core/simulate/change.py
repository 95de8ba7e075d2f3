"""Speckle and the non-landslide, date-specific change of simulated backscatter.

SYNTHETIC-data physics used by :func:`..simulate.simulate_event`, calibrated
against real OPERA RTC-S1 stacks (the table is in the package docstring).
Pure numpy/scipy: every function takes its ``numpy.random.Generator``, so the
caller decides the seeding and the results are deterministic.

Speckle at the resolution of the product (:func:`correlated_speckle`)
    A multiplier of the intensity with a Gamma(ENL, 1/ENL) marginal (mean 1)
    at every pixel, spatially correlated over the resolution cell.  Sentinel-1
    IW GRDH has 10 m pixels but a resolution of about 20 x 22 m (range x
    azimuth) with ENL 4.4: neighbouring pixels share speckle, so averaging
    3 x 3 pixels to 30 m gains only about 2 looks-cells (ENL about 9), not 9.
    Independent per-pixel speckle (the simulator before 2.0) gave ENL 40 at
    30 m and a no-change A_ratio four times too clean.  Built as a Gaussian
    copula: a white Gaussian field smoothed with a Gaussian kernel whose
    full width at half maximum is the resolution, mapped through the normal
    CDF and the Gamma quantile, so the marginal is exactly Gamma(ENL).

Date-specific fields (:func:`exponential_field`)
    Zero-mean, unit-variance Gaussian random fields with an exponential
    covariance ``exp(-r / L)``, generated on a padded grid (no periodic wrap
    across the scene).

Wet brightening (:func:`wet_brightening_db`)
    Rain wets soil and vegetation over the whole area at once: a date-specific,
    area-wide *additive* power ``W(t) g_c E_t(x) sigma_c`` on top of the dry
    backscatter (``W`` the soil wetness 0..1.5 of that date, ``g_c`` the gain
    of land cover ``c``, ``sigma_c`` its reference level, ``E_t`` a lognormal
    pattern of mean 1).  Because the wet power adds to the dry power, dark
    pixels brighten more than bright ones in dB, as in the real stacks (the
    wet-date change correlates at -0.8 with the static level there).
    ``E_t = exp(k R_t - k^2 / 2)`` with ``R_t = sqrt(p) R + sqrt(1 - p) R'_t``:
    a pattern ``R`` that persists between dates (soil depth, drainage) and
    one ``R'_t`` of that date (where the rain fell), both exponential fields.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage, special

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def correlated_speckle(rng: np.random.Generator, shape: tuple[int, int], enl: float,
                       resolution_px: float) -> np.ndarray:
    """Intensity speckle (mean 1, Gamma(``enl``) marginal) correlated over ``resolution_px`` (FWHM, pixels).

    ``resolution_px <= 1`` gives independent pixels.
    """
    g = resolution_cell_field(rng, shape, resolution_px)
    u = np.clip(special.ndtr(g), 1e-12, 1.0 - 1e-12)
    return special.gammaincinv(enl, u) / enl


def resolution_cell_field(rng: np.random.Generator, shape: tuple[int, int], resolution_px: float) -> np.ndarray:
    """Gaussian field, mean 0, variance 1, correlated over a resolution cell (FWHM ``resolution_px``)."""
    g = rng.standard_normal(shape)
    if resolution_px <= 1.0:
        return g
    sigma = float(resolution_px) / FWHM_PER_SIGMA
    return ndimage.gaussian_filter(g, sigma, mode="wrap") / _gaussian_kernel_norm(sigma)


def _gaussian_kernel_norm(sigma: float) -> float:
    """Standard deviation of unit white noise after ``ndimage.gaussian_filter(sigma)`` in 2-D (exact)."""
    radius = int(4.0 * sigma + 0.5)  # scipy's default truncate=4
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    w /= w.sum()
    return float(np.sum(w * w))  # separable: the 2-D variance is (sum w^2)^2, its square root sum w^2


def exponential_field(rng: np.random.Generator, shape: tuple[int, int], corr_px: float) -> np.ndarray:
    """Gaussian random field, mean 0, variance 1, covariance ``exp(-r / corr_px)`` (r in pixels).

    Spectral synthesis on a grid padded by twice the correlation length (at
    least 16 pixels) on each axis, cropped to ``shape``: the padding keeps
    opposite edges of the scene from being correlated by the FFT's wrap.
    """
    ny, nx = shape
    pad = int(min(max(2.0 * corr_px, 16.0), 4.0 * max(ny, nx)))
    gy, gx = ny + pad, nx + pad
    ky = np.fft.fftfreq(gy)[:, None]
    kx = np.fft.fftfreq(gx)[None, :]
    # 2-D spectrum of exp(-r/L): proportional to L^2 / (1 + (2 pi k L)^2)^(3/2)
    filt = (1.0 + (2.0 * np.pi * corr_px) ** 2 * (kx * kx + ky * ky)) ** (-0.75)
    filt[0, 0] = 0.0
    filt /= math.sqrt(np.mean(filt * filt))  # unit variance of the synthesised field
    field = np.fft.ifft2(np.fft.fft2(rng.standard_normal((gy, gx))) * filt).real
    return np.ascontiguousarray(field[:ny, :nx])


def wet_pattern(persistent: np.ndarray, of_date: np.ndarray, sd: float, persistence: float) -> np.ndarray:
    """Lognormal pattern ``E_t`` (mean 1) from the persistent and the date's unit fields."""
    r = math.sqrt(persistence) * persistent + math.sqrt(1.0 - persistence) * of_date
    return np.exp(sd * r - 0.5 * sd * sd)


def wet_brightening_db(dry_db: np.ndarray, reference_db: np.ndarray, gain: np.ndarray, wetness: float,
                       pattern: np.ndarray) -> np.ndarray:
    """Backscatter (dB) after adding the wet power ``wetness * gain * pattern * 10^(reference/10)``."""
    if wetness <= 0.0:
        return dry_db
    wet = wetness * gain * pattern * 10.0 ** (reference_db / 10.0)
    return 10.0 * np.log10(10.0 ** (dry_db / 10.0) + wet)


def wet_change_at_reference_db(wetness: float, gain: float) -> float:
    """The dB change of a pixel at its class reference level with a mean pattern (``E = 1``)."""
    return 10.0 * math.log10(1.0 + max(wetness, 0.0) * gain)
