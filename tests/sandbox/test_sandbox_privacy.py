"""Noise calibration and sampling: OpenDP's maps decide the cost, the keyed sampler must match them."""

from __future__ import annotations

import math

import numpy as np
import opendp.prelude as dp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.sandbox.privacy import (
    FLOAT_GRID_STEPS,
    discrete_laplace,
    discrete_laplace_variance,
    dp_threshold,
    keyed_rng,
    keyed_seed,
    laplace_epsilon,
    sum_grid,
    threshold_privacy,
)

dp.enable_features("contrib")


@pytest.mark.parametrize("scale", [0.5, 2.0, 7.5, 400.0])
def test_art22_keyed_sampler_has_the_discrete_laplace_distribution(scale: float) -> None:
    samples = discrete_laplace(keyed_rng(b"k", "test", str(scale)), scale, 200_000)
    assert samples.dtype == np.int64
    variance = discrete_laplace_variance(scale)
    assert abs(samples.mean()) < 5 * math.sqrt(variance / samples.size)
    assert samples.var() == pytest.approx(variance, rel=0.03)
    # P(X = 0) = tanh(1 / (2 scale))
    assert np.mean(samples == 0) == pytest.approx(math.tanh(1 / (2 * scale)), abs=0.005)


def test_art22_keyed_sampler_matches_opendps_own_sampler() -> None:
    scale = 3.0
    ours = discrete_laplace(keyed_rng(b"k", "compare"), scale, 20_000)
    measurement = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), scale=scale)
    theirs = np.array(measurement([0] * 20_000))
    for threshold in (0, 1, 3, 6, 10):
        assert np.mean(np.abs(ours) <= threshold) == pytest.approx(np.mean(np.abs(theirs) <= threshold), abs=0.02)


def test_art22_same_key_and_parts_give_the_same_noise_others_do_not() -> None:
    a = discrete_laplace(keyed_rng(b"secret", "sub-1", "v1", "q"), 2.0, 50)
    assert np.array_equal(a, discrete_laplace(keyed_rng(b"secret", "sub-1", "v1", "q"), 2.0, 50))
    for other in (keyed_rng(b"secret", "sub-2", "v1", "q"), keyed_rng(b"other", "sub-1", "v1", "q"),
                  keyed_rng(b"secret", "sub-1", "v2", "q")):
        assert not np.array_equal(a, discrete_laplace(other, 2.0, 50))
    assert keyed_seed(b"s", "ab", "c") != keyed_seed(b"s", "a", "bc")  # parts cannot run together


def test_art22_epsilon_comes_from_opendps_map() -> None:
    assert laplace_epsilon(4.0, 1) == pytest.approx(0.25)
    assert laplace_epsilon(4.0, 3) == pytest.approx(0.75)


@settings(deadline=None)
@given(st.floats(min_value=0.5, max_value=50.0), st.integers(min_value=1, max_value=40))
def test_art22_threshold_keeps_delta_within_target_and_is_the_smallest_such(scale: float, k: int) -> None:
    threshold = dp_threshold(scale, k, 1e-6)
    assert threshold >= k
    assert threshold_privacy(scale, threshold)[1] <= 1e-6
    if threshold > k:
        assert threshold_privacy(scale, threshold - 1)[1] > 1e-6


def test_art22_sum_grid_bounds_one_rows_influence() -> None:
    assert sum_grid((0, 60), integer_column=True) == (1.0, 60)
    unit, steps = sum_grid((-50.0, 200_000.0), integer_column=False)
    assert unit == 200_000.0 / FLOAT_GRID_STEPS and steps == FLOAT_GRID_STEPS + 1
    assert sum_grid((0, 0.5), integer_column=True)[1] == FLOAT_GRID_STEPS + 1
