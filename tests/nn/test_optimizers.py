"""Checks of :mod:`skhepex.nn.optimizers` (Adam, SGD with Nesterov momentum)."""

import numpy as np
import pytest

from skhepex.nn import Dense, Network
from skhepex.nn.optimizers import SGD, Adam, make_optimizer


def quadratic(rng, n):
    """A random strictly convex quadratic ``0.5 (p-c)^T A (p-c)`` with eigenvalues in [1, 4]."""
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    A = Q @ np.diag(np.linspace(1.0, 4.0, n)) @ Q.T
    c = rng.normal(size=n)

    def f(p):
        d = p - c
        return 0.5 * d @ A @ d

    def grad(p):
        return A @ (p - c)

    return f, grad, c


def test_make_optimizer_dispatch():
    p = [np.zeros(3)]
    adam = make_optimizer("adam", p, 0.01)
    sgd = make_optimizer("sgd", p, 0.02)
    assert isinstance(adam, Adam) and adam.learning_rate == 0.01 and adam.params is p
    assert isinstance(sgd, SGD) and sgd.learning_rate == 0.02 and sgd.params is p


@pytest.mark.parametrize("solver,lr", [("adam", 0.05), ("sgd", 0.02)])
def test_optimizer_minimises_convex_quadratic(solver, lr):
    rng = np.random.RandomState(0)
    f1, g1, c1 = quadratic(rng, 5)
    f2, g2, c2 = quadratic(rng, 3)
    p1, p2 = rng.normal(size=5) * 3, rng.normal(size=3) * 3
    opt = make_optimizer(solver, [p1, p2], lr)
    start = f1(p1) + f2(p2)
    assert start > 1.0
    values = []
    for _ in range(400):
        opt.step([g1(p1), g2(p2)])
        values.append(f1(p1) + f2(p2))
    assert values[50] < start
    assert values[-1] < 1e-3 * start
    np.testing.assert_allclose(p1, c1, atol=0.05)
    np.testing.assert_allclose(p2, c2, atol=0.05)


def test_adam_two_steps_match_textbook_formula():
    """Kingma & Ba, Algorithm 1, written out by hand for t = 1, 2.

    The implementation (like scikit-learn's) uses the paper's "efficient" form
    (end of sec. 2): the bias corrections are folded into the step size,
    ``lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)``, and epsilon is added to the
    *uncorrected* ``sqrt(v)``. That equals Algorithm 1 with epsilon replaced by
    ``eps / sqrt(1 - b2^t)``; this is checked to rounding, and the deviation
    from Algorithm 1 with the plain epsilon is checked to be negligible.
    """
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    p0 = np.array([0.5, -1.0, 2.0])
    g_1 = np.array([0.1, -0.2, 3.0])
    g_2 = np.array([-0.4, -0.1, 1.0])
    p = p0.copy()
    opt = Adam([p], lr, beta_1=b1, beta_2=b2, epsilon=eps)

    def textbook(p_prev, m, v, t, epsilon):
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        return p_prev - lr * m_hat / (np.sqrt(v_hat) + epsilon)

    # t = 1: bias-corrected moments are g and g^2, so the step is ~ lr * sign(g)
    m = (1 - b1) * g_1
    v = (1 - b2) * g_1 ** 2
    opt.step([g_1])
    np.testing.assert_allclose(p, textbook(p0, m, v, 1, eps / np.sqrt(1 - b2)),
                               rtol=0, atol=1e-15)
    np.testing.assert_allclose(p, textbook(p0, m, v, 1, eps), rtol=0, atol=1e-5 * lr)
    np.testing.assert_allclose(p, p0 - lr * np.sign(g_1), rtol=0, atol=1e-5 * lr)
    p1 = p.copy()

    # t = 2
    m = b1 * m + (1 - b1) * g_2
    v = b2 * v + (1 - b2) * g_2 ** 2
    opt.step([g_2])
    np.testing.assert_allclose(p, textbook(p1, m, v, 2, eps / np.sqrt(1 - b2 ** 2)),
                               rtol=0, atol=1e-15)
    np.testing.assert_allclose(p, textbook(p1, m, v, 2, eps), rtol=0, atol=1e-5 * lr)
    np.testing.assert_allclose(opt.ms[0], m, rtol=1e-14)
    np.testing.assert_allclose(opt.vs[0], v, rtol=1e-14)
    assert opt.t == 2
    # the second step really differs from a sign step (momentum + bias correction)
    assert np.max(np.abs((p - p1) + lr * np.sign(g_2))) > 1e-3 * lr


def test_sgd_nesterov_two_steps_by_hand():
    lr, mu = 0.1, 0.9
    p0 = np.array([1.0, -2.0])
    g_1, g_2 = np.array([0.5, 1.0]), np.array([-0.25, 2.0])
    p = p0.copy()
    opt = SGD([p], lr, momentum=mu, nesterov=True)
    opt.step([g_1])
    v = -lr * g_1
    expected = p0 + mu * v - lr * g_1
    np.testing.assert_allclose(p, expected, rtol=1e-15)
    opt.step([g_2])
    v = mu * v - lr * g_2
    expected = expected + mu * v - lr * g_2
    np.testing.assert_allclose(p, expected, rtol=1e-15)


def test_sgd_plain_momentum_by_hand():
    p = np.array([1.0])
    opt = SGD([p], 0.1, momentum=0.5, nesterov=False)
    opt.step([np.array([2.0])])  # v = -0.2
    opt.step([np.array([2.0])])  # v = -0.1 - 0.2 = -0.3
    np.testing.assert_allclose(p, [1.0 - 0.2 - 0.3], rtol=1e-15)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_updates_are_in_place_on_network_params(solver):
    """The network's weight arrays themselves move (no rebinding to new arrays)."""
    rng = np.random.RandomState(0)
    net = Network([Dense(3, 2)], (3,)).build(rng)
    layer = net.weight_layers[0]
    W_obj, b_obj = layer.W, layer.b
    W_view = layer.W[:, :1]  # a view shares memory with the parameter
    before = layer.W.copy(), layer.b.copy()
    opt = make_optimizer(solver, net.params(), 0.1)
    opt.step([np.ones_like(layer.W), np.ones_like(layer.b)])
    assert layer.W is W_obj and layer.b is b_obj
    assert opt.params[0] is layer.W and opt.params[1] is layer.b
    assert np.all(layer.W < before[0]) and np.all(layer.b < before[1])
    np.testing.assert_array_equal(W_view, layer.W[:, :1])


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_zero_gradient_leaves_params_unchanged(solver):
    p = np.array([1.0, -3.0, 0.25])
    opt = make_optimizer(solver, [p], 0.1)
    for _ in range(3):
        opt.step([np.zeros(3)])
    np.testing.assert_array_equal(p, [1.0, -3.0, 0.25])
