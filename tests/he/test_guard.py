"""No silent wrap-around: the reproductions of the reliability issue, and the guard."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skhepex import MLPClassifier, MLPRegressor
from skhepex.he import HEPredictor
from skhepex.he.bounds import PrecisionError

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


@pytest.fixture(scope="module")
def digits_all():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def test_large_regression_targets_do_not_wrap(digits_all):
    # before: targets y + 300 at 4096 samples came back shifted by exactly 512
    X, y = digits_all
    reg = _fit(MLPRegressor(hidden_layer_sizes=(16,), max_iter=60, random_state=0),
               X, y + 300.0)
    he = HEPredictor(reg, prefit=True).fit()
    Xs = np.tile(X, (3, 1))[:4096]
    ref = reg.predict(Xs)
    try:
        got = he.predict(Xs)
    except PrecisionError:      # refusing is allowed; a shifted value is not
        return
    assert np.abs(got - ref).max() < 1e-2 * np.abs(ref).max() / 300 + 1e-2


def test_scaled_inputs_refused_or_correct(digits_all):
    # before: inputs x10 gave logits +512 and argmax agreement 0.83; x100: 0.08
    X, y = digits_all
    clf = _fit(MLPClassifier(hidden_layer_sizes=(16,), max_iter=30, random_state=0), X, y)
    he = HEPredictor(clf, prefit=True, tile_shape=(8, 8)).fit()
    for factor in (10.0, 100.0):
        Xs = X[:200] * factor
        try:
            got = he.decision_function(Xs)
        except PrecisionError as exc:
            assert "trusted" in str(exc) or "wrap" in str(exc)
            continue
        np.testing.assert_allclose(got, clf.decision_function(Xs),
                                   atol=1e-3 * max(1.0, np.abs(got).max()))


def test_forced_wrap_around_is_detected(digits_all):
    # 4 bits of headroom (values up to 2**(44-40-1) = 8 decode): a regressor with
    # outputs of 10-300 must raise, never return shifted values
    X, y = digits_all
    reg = _fit(MLPRegressor(hidden_layer_sizes=(8,), max_iter=40, random_state=0),
               X, 30.0 * y)
    with pytest.warns(UserWarning, match="fewer than"):
        he = HEPredictor(reg, prefit=True, tile_shape=(8, 8), poly_modulus_degree=8192,
                         coeff_mod_bit_sizes=(44, 40, 40, 40, 54)).fit()
    for n in (5, 63, 64, 200):
        with pytest.raises(PrecisionError):
            he.predict(X[:n])
    # simulate mode applies the same guard
    sim = HEPredictor(reg, prefit=True, tile_shape=(8, 8), mode="simulate",
                      poly_modulus_degree=8192, coeff_mod_bit_sizes=(44, 40, 40, 40, 54))
    with pytest.warns(UserWarning):
        sim.fit()
    np.testing.assert_allclose(sim.predict(X[:20]), reg.predict(X[:20]), atol=1e-9)


def test_huge_inputs_refused_with_a_clear_error(digits_all):
    X, y = digits_all
    clf = _fit(MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0), X, y)
    for mode in ("encrypted", "simulate"):
        he = HEPredictor(clf, prefit=True, tile_shape=(8, 8), mode=mode).fit()
        with pytest.raises(PrecisionError, match="too large"):
            he.predict(X[:3] * 1e300)


def test_declared_input_range(digits_all):
    X, y = digits_all
    clf = _fit(MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0), X, y)
    he = HEPredictor(clf, prefit=True, tile_shape=(8, 8), mode="simulate").fit()
    lo, hi = he.input_range_
    assert np.all(lo <= X.min(0)) and np.all(hi >= X.max(0))
    explicit = HEPredictor(clf, prefit=True, tile_shape=(8, 8), mode="simulate",
                           input_range=(0.0, 1.0)).fit()
    np.testing.assert_array_equal(explicit.input_range_[0], 0.0)
    assert explicit.guard_.bounds["predict"] <= explicit.guard_.limit
    with pytest.raises(ValueError, match="input_range"):
        HEPredictor(clf, prefit=True, mode="simulate", input_range=(0.0, [1.0, 2.0])).fit()
    none = HEPredictor(clf, prefit=True, tile_shape=(8, 8), mode="simulate",
                       input_range=None).fit()
    assert none.input_range_ is None and none.guard_.bounds["predict"] is None
