"""Noise for sandbox results: OpenDP calibrates and accounts, a keyed generator samples.

Why this split. OpenDP (a vetted library) is the authority on *how much* privacy a noise
scale costs: every epsilon and delta the sandbox reports comes from the privacy map of
an OpenDP measurement (``make_laplace`` for counts and sums, ``make_laplace_threshold``
for releasing only groups whose noisy size passes a threshold). OpenDP deliberately
cannot be seeded, but the issue requires that the *same query* by the *same
subscription* on the *same product version* gets the *same noise*, so that asking again
and averaging gains nothing. So the noise itself is drawn from a discrete Laplace
distribution (the distribution OpenDP's integer ``make_laplace`` samples) by a
generator seeded with HMAC-SHA256(secret, subscription, version, query, measure). The
sampler works on integers only: it has none of the floating-point weaknesses of
textbook continuous Laplace noise. Float sums are released on a grid (``unit``) and
noised in grid steps.

Privacy unit: one row of the product. A product of grade general_4 should therefore have
one row per person; if someone has r rows, their loss is r times the reported epsilon.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import opendp.prelude as dp

dp.enable_features("contrib")

#: steps per unit of sensitivity for float sums: fine enough to be invisible next to the noise
FLOAT_GRID_STEPS = 1024
#: the largest delta the threshold on group sizes may cost (the released keys are data)
DELTA_TARGET = 1e-6


@dataclass(frozen=True)
class Measure:
    """One noisy statistic per group.

    ``name`` is ``n`` (rows in the group), ``sum:<col>``, ``nn:<col>`` (non-null values,
    the denominator of a mean) or ``distinct:<col>``. Noise is in grid steps of ``unit``:
    ``sensitivity`` and ``scale`` are counted in steps, so the sampler stays integral.
    """

    name: str
    column: str | None
    sensitivity: int
    unit: float
    scale: float
    clamp: tuple[float, float] | None = None

    @property
    def integral(self) -> bool:
        return self.unit == 1.0


def sum_grid(bounds: tuple[float, float], integer_column: bool) -> tuple[float, int]:
    """(unit, sensitivity in units) for a clamped sum: one row moves it by at most max(|lo|, |hi|)."""
    lo, hi = bounds
    reach = max(abs(lo), abs(hi))
    if integer_column and float(lo).is_integer() and float(hi).is_integer():
        return 1.0, max(1, int(reach))
    # rounding the float sum to the grid can add one more step
    return reach / FLOAT_GRID_STEPS, FLOAT_GRID_STEPS + 1


@lru_cache(maxsize=4096)
def laplace_epsilon(scale: float, sensitivity: int) -> float:
    """Epsilon of discrete Laplace noise of ``scale`` on a statistic of ``sensitivity`` (OpenDP map)."""
    measurement = dp.m.make_laplace(dp.atom_domain(T=int), dp.absolute_distance(T=int), scale=scale)
    return float(measurement.map(sensitivity))  # type: ignore[no-untyped-call]


@lru_cache(maxsize=1024)
def threshold_privacy(scale: float, threshold: int) -> tuple[float, float]:
    """(epsilon, delta) of releasing group sizes + noise that reach ``threshold`` (OpenDP map).

    One row added or removed changes one group's size by one: d_in = (l0=1, l1=1, linf=1).
    """
    domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T=int))
    metric = dp.l01inf_distance(dp.absolute_distance(T=int))
    measurement = dp.m.make_laplace_threshold(domain, metric, scale=scale, threshold=threshold)
    epsilon, delta = measurement.map((1, 1, 1))  # type: ignore[no-untyped-call]
    return float(epsilon), float(delta)


@lru_cache(maxsize=1024)
def dp_threshold(scale: float, min_group_size: int, delta_target: float = DELTA_TARGET) -> int:
    """The smallest noisy-size threshold >= k whose delta (per OpenDP) is within the target.

    Starts from the closed form 1 + scale * ln(1 / (2 delta)) and lets OpenDP's map have
    the last word, so a change in OpenDP's analysis cannot silently weaken the release.
    """
    guess = max(min_group_size, math.ceil(1 + scale * math.log(1 / (2 * delta_target))))
    threshold = max(min_group_size, guess - 2)
    while threshold_privacy(scale, threshold)[1] > delta_target:
        threshold += 1
    return threshold


def keyed_seed(secret: bytes, *parts: str) -> int:
    """A 256-bit seed from HMAC-SHA256 over the parts (NUL-separated, so they cannot run together)."""
    message = "\x00".join(parts).encode()
    return int.from_bytes(hmac.digest(secret, message, hashlib.sha256), "big")


def keyed_rng(secret: bytes, *parts: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(keyed_seed(secret, *parts)))


def discrete_laplace(rng: np.random.Generator, scale: float, size: int) -> np.ndarray:
    """Integers with P(x) proportional to exp(-|x| / scale): the difference of two geometrics."""
    if size == 0:
        return np.zeros(0, dtype=np.int64)
    p = -math.expm1(-1.0 / scale)  # 1 - exp(-1/scale), accurate for large scales
    a = rng.geometric(p, size).astype(np.int64)
    b = rng.geometric(p, size).astype(np.int64)
    return a - b


def discrete_laplace_variance(scale: float) -> float:
    """Var of the discrete Laplace of ``scale``: 2 e^(-1/s) / (1 - e^(-1/s))^2."""
    r = math.exp(-1.0 / scale)
    return 2 * r / (1 - r) ** 2
