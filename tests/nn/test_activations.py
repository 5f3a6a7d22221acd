"""Gradient and polynomial-form checks of :mod:`skhepex.nn.activations`."""

import numpy as np
import pytest

from skhepex.nn import Activation
from nn_checks import ATOL, RTOL, num_grad


POLY_CASES = [
    ("square", None),
    ("identity", None),
    ("poly", None),  # default coefficients
    ("poly", (-0.3, 1.7, 0.4)),
]
NON_POLY = ["relu", "tanh", "logistic"]


def sample(rng, shape, away_from_zero=False):
    x = rng.normal(scale=1.5, size=shape)
    if away_from_zero:  # keep |x| >= 0.1 so relu is differentiable within +-eps
        x = np.sign(x) * (0.1 + np.abs(x))
    return x


def check_input_gradient(act, x, rng):
    out = act.forward(x, train=True)
    assert out.shape == x.shape
    R = rng.normal(size=x.shape)
    gx = act.backward(R)

    def loss():
        return float(np.sum(R * act.forward(x)))

    np.testing.assert_allclose(gx, num_grad(loss, x), rtol=RTOL, atol=ATOL,
                               err_msg=f"input gradient of {act.name}")
    return R


@pytest.mark.parametrize("name,coefs", POLY_CASES + [(n, None) for n in NON_POLY])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 2, 3)])
def test_input_gradient(name, coefs, shape):
    rng = np.random.RandomState(0)
    act = Activation(name, coefs=coefs)
    check_input_gradient(act, sample(rng, shape, away_from_zero=name == "relu"), rng)


@pytest.mark.parametrize("coefs", [None, (0.2, -0.7, 1.1)])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 2, 3)])
def test_trainable_poly_coefficient_gradients(coefs, shape):
    rng = np.random.RandomState(1)
    act = Activation("poly", coefs=coefs, trainable=True)
    x = sample(rng, shape)
    R = check_input_gradient(act, x, rng)  # also fills grad_coefs
    [p], [g] = act.params(), act.grads()
    assert p is act.coefs  # the optimizer updates this very array in place
    assert g.shape == (3,)

    def loss():
        return float(np.sum(R * act.forward(x)))

    np.testing.assert_allclose(g, num_grad(loss, act.coefs), rtol=RTOL, atol=ATOL,
                               err_msg="poly coefficient gradients")


@pytest.mark.parametrize("name", ["square", "identity", "relu", "tanh", "logistic"])
def test_only_trainable_poly_has_params(name):
    assert Activation(name, trainable=True).params() == []
    assert Activation("poly").params() == []
    assert Activation("poly").grads() == []


@pytest.mark.parametrize("name,coefs", POLY_CASES)
def test_polynomial_form_matches_forward(name, coefs):
    rng = np.random.RandomState(2)
    act = Activation(name, coefs=coefs)
    pc = act.polynomial()
    assert pc is not None and len(pc) == 3
    a, b, c = pc
    x = sample(rng, (6, 7))
    np.testing.assert_allclose(act.forward(x), a * x * x + b * x + c, rtol=1e-14, atol=1e-14)
    if coefs is not None:
        np.testing.assert_allclose(pc, coefs, rtol=0, atol=0)
    assert act.is_polynomial


def test_polynomial_form_follows_trained_coefficients():
    act = Activation("poly", coefs=(0.1, 0.2, 0.3), trainable=True)
    act.params()[0][...] = (0.5, -1.0, 2.0)  # what an in-place optimizer step does
    assert act.polynomial() == (0.5, -1.0, 2.0)
    np.testing.assert_allclose(act.forward(np.array([2.0])), [0.5 * 4 - 2.0 + 2.0])


@pytest.mark.parametrize("name", NON_POLY)
def test_non_polynomial_returns_none(name):
    act = Activation(name)
    assert act.polynomial() is None
    assert not act.is_polynomial


def test_non_polynomial_forward_values():
    x = np.linspace(-4, 4, 17)
    np.testing.assert_allclose(Activation("relu").forward(x), np.maximum(x, 0))
    np.testing.assert_allclose(Activation("tanh").forward(x), np.tanh(x), rtol=1e-14)
    np.testing.assert_allclose(Activation("logistic").forward(x), 1 / (1 + np.exp(-x)),
                               rtol=1e-14)


def test_unknown_activation_rejected():
    with pytest.raises(ValueError):
        Activation("softplus")
