"""Gradient and stability checks of :mod:`skhepex.nn.losses`."""

import numpy as np
import pytest

from skhepex.nn.losses import softmax, softmax_cross_entropy, squared_error
from nn_checks import ATOL, RTOL, num_grad



def onehot(labels, k):
    return np.eye(k)[labels]


@pytest.mark.parametrize("n,k", [(5, 3), (1, 4), (6, 2)])
def test_softmax_cross_entropy_gradient(n, k):
    rng = np.random.RandomState(n + k)
    z = rng.normal(scale=2.0, size=(n, k))
    y = onehot(rng.randint(k, size=n), k)
    loss, grad = softmax_cross_entropy(z, y)
    assert grad.shape == z.shape
    np.testing.assert_allclose(
        grad, num_grad(lambda: softmax_cross_entropy(z, y)[0], z), rtol=RTOL, atol=ATOL)


def test_softmax_cross_entropy_value():
    z = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    y = onehot([1, 0], 3)
    ref = -np.mean([np.log(np.exp(z[0, 1]) / np.exp(z[0]).sum()),
                    np.log(np.exp(z[1, 0]) / np.exp(z[1]).sum())])
    np.testing.assert_allclose(softmax_cross_entropy(z, y)[0], ref, rtol=1e-14)


@pytest.mark.parametrize("shape", [(5, 3), (4, 1), (2, 6)])
def test_squared_error_gradient_and_value(shape):
    rng = np.random.RandomState(shape[0])
    z = rng.normal(size=shape)
    y = rng.normal(size=shape)
    loss, grad = squared_error(z, y)
    np.testing.assert_allclose(loss, 0.5 * np.mean(np.sum((z - y) ** 2, axis=1)), rtol=1e-14)
    np.testing.assert_allclose(
        grad, num_grad(lambda: squared_error(z, y)[0], z), rtol=RTOL, atol=ATOL)


def test_softmax_rows_sum_to_one():
    rng = np.random.RandomState(0)
    z = rng.normal(scale=5.0, size=(7, 4))
    p = softmax(z)
    assert np.all(p > 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(p, np.exp(z) / np.exp(z).sum(axis=1, keepdims=True),
                               rtol=1e-12)


def test_softmax_stable_for_large_logits():
    z = np.array([[1000.0, 1001.0, 999.0], [-1e4, 0.0, 1e4], [800.0, 800.0, 800.0]])
    # overflow / invalid operations fail the test (underflow to 0 is harmless)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        p = softmax(z)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-14)
    # shift invariance: same as the small logits
    np.testing.assert_allclose(p[0], softmax(np.array([[1.0, 2.0, 0.0]]))[0], rtol=1e-12)
    np.testing.assert_allclose(p[1], [0.0, 0.0, 1.0], atol=1e-300)
    np.testing.assert_allclose(p[2], [1 / 3] * 3, rtol=1e-14)


def test_cross_entropy_finite_for_large_logits():
    z = np.array([[1000.0, -1000.0], [-500.0, 500.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        loss_right, grad_right = softmax_cross_entropy(z, onehot([0, 1], 2))
        loss_wrong, grad_wrong = softmax_cross_entropy(z, onehot([1, 0], 2))
    assert np.isfinite(loss_right) and np.isfinite(loss_wrong)
    assert loss_right == pytest.approx(0.0, abs=1e-12)
    assert loss_wrong == pytest.approx(1500.0)  # exact: mean of the margins 2000, 1000
    np.testing.assert_allclose(grad_right, 0.0, atol=1e-12)
    np.testing.assert_allclose(grad_wrong, [[0.5, -0.5], [-0.5, 0.5]], atol=1e-12)


def test_cross_entropy_loss_consistent_with_gradient_when_saturated():
    z = np.array([[0.0, 40.0, -3.0], [1.0, 0.5, -0.2]])
    y = onehot([0, 2], 3)  # sample 0: true class trails the max by 40 (p ~ 4e-18)
    loss, grad = softmax_cross_entropy(z, y)
    # exact mean cross-entropy computed with log-sum-exp
    lse = z.max(axis=1) + np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1))
    np.testing.assert_allclose(loss, np.mean(lse - np.sum(z * y, axis=1)), rtol=1e-12)
    np.testing.assert_allclose(
        grad, num_grad(lambda: softmax_cross_entropy(z, y)[0], z), rtol=RTOL, atol=ATOL)
