"""``MLPRegressor(target_scaling=...)``: quality, the warning, and the exactness of the fold."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skhepex import MLPRegressor


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def _quiet_fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def test_diabetes_raw_target(diabetes):
    X_train, X_test, y_train, y_test = diabetes
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning with the default target_scaling
        reg = MLPRegressor(random_state=0).fit(X_train, y_train)
    # the default (100 square units, alpha=1e-4) overfits the 331 samples, as
    # scikit-learn's MLPRegressor does on standardised y (0.22): measured 0.24;
    # without target scaling skhepex scored -0.79 before
    assert reg.score(X_test, y_test) >= 0.2
    # regularised, it matches Ridge (0.36): measured 0.38
    reg = MLPRegressor(alpha=10.0, random_state=0).fit(X_train, y_train)
    assert reg.score(X_test, y_test) >= 0.3


def test_warning_when_unscaled_targets_are_far_from_unit_scale(diabetes, rng):
    X_train, _, y_train, _ = diabetes
    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, target_scaling=None,
                       random_state=0)
    for y in (y_train, y_train / 1000, (y_train - y_train.mean()) / y_train.std() + 5):
        with pytest.warns(UserWarning, match="target_scaling='auto'"):
            _quiet_fit(reg, X_train, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X_train, rng.normal(0.5, 2.0, len(y_train)))  # near unit scale
        reg.set_params(target_scaling="auto").fit(X_train, y_train)  # scaled: silent


def _prune(reg, rng):
    for mask in reg.masks_:
        mask[...] = rng.rand(*mask.shape) > 0.4
    reg.network_.apply_masks()
    return [m.copy() for m in reg.masks_]


@pytest.mark.parametrize("multi", [False, True])
def test_fold_matches_training_on_standardised_targets(multi, diabetes):
    X_train, X_test, y_train, _ = diabetes
    y = np.c_[y_train, 3.0 - 0.01 * y_train ** 1.5] if multi else y_train
    auto = _quiet_fit(MLPRegressor(hidden_layer_sizes=(8,), max_iter=30, random_state=0),
                      X_train, y)
    mean, scale = y.mean(axis=0), y.std(axis=0)
    np.testing.assert_allclose(auto.target_mean_, np.atleast_1d(mean))
    np.testing.assert_allclose(auto.target_scale_, np.atleast_1d(scale))
    manual = _quiet_fit(MLPRegressor(hidden_layer_sizes=(8,), max_iter=30, target_scaling=None,
                                     random_state=0), X_train, (y - mean) / scale)
    np.testing.assert_array_equal(manual.target_mean_, 0.0)
    # same training, then the map folded into the output layer
    for a, m in zip(auto.coefs_[:-1] + auto.intercepts_[:-1],
                    manual.coefs_[:-1] + manual.intercepts_[:-1]):
        np.testing.assert_allclose(a, m, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(auto.coefs_[-1], manual.coefs_[-1] * scale, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(auto.predict(X_test), manual.predict(X_test) * scale + mean,
                               rtol=1e-6)
    assert auto.loss_curve_ == pytest.approx(manual.loss_curve_, rel=1e-6)


def test_raw_network_output_is_the_prediction(diabetes, rng):
    X_train, X_test, y_train, _ = diabetes
    Y = np.c_[y_train, y_train / 10 + 50]
    reg = _quiet_fit(MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0),
                     X_train, Y)
    _prune(reg, rng)
    # hidden and output permutations, as the pruning steps set them
    reg.network_.permute_hidden(0, rng.permutation(8))
    reg.network_.permute_io(output_perm=[1, 0])
    masks = [m.copy() for m in reg.masks_]
    np.testing.assert_array_equal(reg.network_.forward(X_test), reg.predict(X_test))
    # every way of training on keeps the masks and the original units
    _quiet_fit(reg.set_params(warm_start=True, max_iter=3), X_train, Y)
    reg.partial_fit(X_train, Y)
    reg.fine_tune(X_train, Y, max_iter=2)
    for W, mask, m0 in zip(reg.coefs_, reg.masks_, masks):
        np.testing.assert_array_equal(mask, m0)
        assert np.all(W[~mask] == 0.0)
    np.testing.assert_array_equal(reg.network_.forward(X_test), reg.predict(X_test))
    np.testing.assert_allclose(reg.predict(X_train).mean(axis=0), Y.mean(axis=0),
                               atol=0.2 * Y.std(axis=0).max())


def test_fold_keeps_masks_and_zeros(diabetes, rng):
    X_train, X_test, y_train, _ = diabetes
    reg = _quiet_fit(MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0),
                     X_train, y_train)
    masks = _prune(reg, rng)
    zeros = [W == 0.0 for W in reg.coefs_]
    before = reg.predict(X_test)
    net = reg.network_
    net.fold_output_affine(1.0 / reg.target_scale_, -reg.target_mean_ / reg.target_scale_)
    standardised = net.forward(X_test).ravel()
    net.fold_output_affine(reg.target_scale_, reg.target_mean_)
    np.testing.assert_allclose(standardised * reg.target_scale_ + reg.target_mean_, before,
                               rtol=1e-12)
    np.testing.assert_allclose(reg.predict(X_test), before, rtol=1e-12)
    for m, m0, W, z in zip(reg.masks_, masks, reg.coefs_, zeros):
        np.testing.assert_array_equal(m, m0)
        np.testing.assert_array_equal(W == 0.0, z)


def test_loss_gradient_is_in_standardised_units(diabetes):
    X_train, _, y_train, _ = diabetes
    auto = _quiet_fit(MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0),
                      X_train, y_train)
    X_net, T = auto.training_targets(X_train, y_train)
    out = auto.network_.forward(X_net, train=True)
    loss, grad = auto.loss_gradient(out, T)
    s = auto.target_scale_
    assert loss == pytest.approx(0.5 * np.mean(((out - T) / s) ** 2))
    np.testing.assert_allclose(grad, (out - T) / s ** 2 / len(T))
    auto.network_.clear_cache()
