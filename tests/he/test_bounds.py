"""Interval bounds of the packed network's values (skhepex.he.bounds)."""
import numpy as np
import pytest
from he_stages import SQ, make_stages

from skhepex.he import CKKSParams
from skhepex.he.bounds import (PrecisionError, decryptable_bound, interval_bounds,
                               margin_bits_for, output_bound, widen_range)
from skhepex.he.simulator import reference_forward


@pytest.mark.parametrize("acts", [[SQ, None], [(0.5, -0.3, 0.2), SQ], [(-0.25, 0.5, 0.1), None]])
def test_bounds_hold_on_random_inputs_in_the_box(acts):
    stages = make_stages([13, 7, 5], (4, 8), acts, seed=3)
    lo, hi = np.full(13, -0.5), np.full(13, 1.5)
    rec = interval_bounds(stages, lo, hi)
    X = np.random.default_rng(0).uniform(lo, hi, (2000, 13))
    Y = reference_forward(stages, X)
    assert np.all(np.abs(Y) <= rec[-1]["out_hi"] + 1e-12)
    assert np.abs(Y).max() <= output_bound(stages, lo, hi, (4, 8))
    # corners of the box too (where linear maps reach their extremes)
    corners = np.where(np.random.default_rng(1).random((500, 13)) < 0.5, lo, hi)
    assert np.all(np.abs(reference_forward(stages, corners)) <= rec[-1]["out_hi"] + 1e-12)


def test_unmasked_garbage_slots_count_for_wt_last_stage():
    stages = make_stages([13, 7], (8, 8), [None], seed=1)
    stages = make_stages([13, 7, 5], (8, 8), [SQ, None], seed=1)
    lo, hi = np.zeros(13), np.ones(13)
    assert output_bound(stages, lo, hi, (8, 8)) >= output_bound(stages, lo, hi, (1, 8))


def test_decryptable_bound_and_margin():
    p = CKKSParams(8192, (49, 40, 40, 40, 49), 40)
    assert decryptable_bound(p) == 2.0 ** (49 - 40 - 2)
    m = margin_bits_for(300.0)
    assert 2.0 ** (m - 2) >= 2 * 300.0        # one safety bit and one bit of slack
    with pytest.raises(PrecisionError, match="infinite"):
        margin_bits_for(float("inf"))


def test_widen_range():
    lo, hi = widen_range(np.zeros(3), np.array([1.0, 2.0, 0.0]), 0.25)
    np.testing.assert_allclose(lo, -0.5)
    np.testing.assert_allclose(hi, [1.5, 2.5, 0.5])


def test_overflow_gives_infinite_bound():
    stages = make_stages([13, 7, 5], (4, 8), [SQ, None], seed=2)
    assert output_bound(stages, np.full(13, -1e300), np.full(13, 1e300)) == np.inf
