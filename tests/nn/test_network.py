"""Whole-network gradient checks and function-preserving permutations of
:class:`skhepex.nn.Network`."""

import numpy as np
import pytest

from skhepex.nn import Activation, AvgPool2D, Conv2D, Dense, Flatten, Network
from skhepex.nn.losses import softmax, softmax_cross_entropy, squared_error
from nn_checks import ATOL, EPS, RTOL, num_grad

N_COORDS = 6  # random coordinates checked per parameter array


def mlp(rng, act="square"):
    return Network([Dense(5, 6), Activation(act), Dense(6, 4),
                    Activation("poly", coefs=(0.2, 0.6, 0.1), trainable=True),
                    Dense(4, 3)], (5,)).build(rng, gain=1.5)


def cnn(rng):
    return Network([Conv2D(2, 3, 3, stride=1, padding=1), AvgPool2D(2), Activation("square"),
                    Conv2D(3, 2, 2, stride=2, padding=1),
                    Activation("poly", coefs=(0.1, 0.5, 0.2), trainable=True),
                    Flatten(), Dense(8, 5), Activation("tanh"), Dense(5, 3)],
                   (2, 6, 6)).build(rng, gain=1.5)


def randomise_biases(net, rng):
    for layer in net.weight_layers:
        layer.b[...] = rng.normal(scale=0.3, size=layer.b.shape)


def analytic_grads(net, X, T, loss_fn):
    out = net.forward(X, train=True)
    _, grad = loss_fn(out, T)
    net.backward(grad)
    return [np.array(g, copy=True) for g in net.grads()]


def check_network_gradients(net, X, T, loss_fn, rng):
    if loss_fn is softmax_cross_entropy:
        # stay out of the regime where the loss clips log(p) at 1e-12 (see
        # test_losses.py::test_cross_entropy_loss_consistent_with_gradient_when_saturated)
        p_true = np.sum(softmax(net.forward(X)) * T, axis=1)
        assert p_true.min() > 1e-6, "test network saturated; choose smaller inputs"
    params = net.params()
    grads = analytic_grads(net, X, T, loss_fn)
    assert len(params) == len(grads) > 0
    n_weight = sum(len(layer.params()) for layer in net.layers)
    assert len(params) == n_weight

    def loss():
        return float(loss_fn(net.forward(X), T)[0])

    for k, (p, g) in enumerate(zip(params, grads)):
        assert g.shape == p.shape
        idx = rng.choice(p.size, size=min(N_COORDS, p.size), replace=False)
        num = num_grad(loss, p, EPS, idx)
        np.testing.assert_allclose(g.flat[idx], num, rtol=RTOL, atol=ATOL,
                                   err_msg=f"parameter array #{k} of shape {p.shape}")


def classification_data(rng, net, n=4):
    X = rng.normal(scale=0.5, size=(n, int(np.prod(net.input_shape))))
    T = np.eye(3)[rng.randint(3, size=n)]
    return X, T


@pytest.mark.parametrize("act", ["square", "tanh", "logistic", "identity"])
def test_mlp_gradient_cross_entropy(act):
    rng = np.random.RandomState(0)
    net = mlp(rng, act)
    randomise_biases(net, rng)
    X, T = classification_data(rng, net)
    check_network_gradients(net, X, T, softmax_cross_entropy, rng)


def test_mlp_gradient_squared_error():
    rng = np.random.RandomState(1)
    net = mlp(rng)
    randomise_biases(net, rng)
    X = rng.normal(size=(4, 5))
    T = rng.normal(size=(4, 3))
    check_network_gradients(net, X, T, squared_error, rng)


def test_cnn_gradient_cross_entropy():
    rng = np.random.RandomState(2)
    net = cnn(rng)
    randomise_biases(net, rng)
    X, T = classification_data(rng, net, n=3)
    check_network_gradients(net, X, T, softmax_cross_entropy, rng)


def test_cnn_input_gradient():
    """The gradient returned by ``Network.backward`` is dL/dx (no permutation set)."""
    rng = np.random.RandomState(3)
    net = cnn(rng)
    X, T = classification_data(rng, net, n=2)
    out = net.forward(X, train=True)
    gx = net.backward(softmax_cross_entropy(out, T)[1]).reshape(X.shape)
    idx = rng.choice(X.size, size=10, replace=False)
    for i in idx:
        Xp, Xm = X.copy(), X.copy()
        Xp.flat[i] += EPS
        Xm.flat[i] -= EPS
        num = (softmax_cross_entropy(net.forward(Xp), T)[0]
               - softmax_cross_entropy(net.forward(Xm), T)[0]) / (2 * EPS)
        np.testing.assert_allclose(gx.flat[i], num, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------ permutations
def test_permute_io_preserves_function():
    rng = np.random.RandomState(4)
    net = mlp(rng)
    randomise_biases(net, rng)
    X = rng.normal(size=(7, 5))
    before = net.forward(X)
    W0, W_last = net.weight_layers[0].W.copy(), net.weight_layers[-1].W.copy()

    in_perm, out_perm = np.array([3, 0, 4, 1, 2]), np.array([2, 0, 1])
    net.permute_io(input_perm=in_perm, output_perm=out_perm)
    # the weights really moved (otherwise the test would be vacuous)
    assert not np.array_equal(net.weight_layers[0].W, W0)
    assert not np.array_equal(net.weight_layers[-1].W, W_last)
    np.testing.assert_array_equal(net.weight_layers[0].W, W0[in_perm])
    np.testing.assert_array_equal(net.weight_layers[-1].W, W_last[:, out_perm])
    np.testing.assert_allclose(net.forward(X), before, rtol=1e-12, atol=1e-12)

    # permutations compose
    net.permute_io(input_perm=np.array([1, 2, 3, 4, 0]), output_perm=np.array([1, 0, 2]))
    np.testing.assert_allclose(net.forward(X), before, rtol=1e-12, atol=1e-12)
    net.permute_io(input_perm=rng.permutation(5))
    net.permute_io(output_perm=rng.permutation(3))
    np.testing.assert_allclose(net.forward(X), before, rtol=1e-12, atol=1e-12)


def test_permute_io_keeps_parameter_gradients_correct():
    """Training after a permutation: backward must undo the output permutation."""
    rng = np.random.RandomState(5)
    net = mlp(rng)
    randomise_biases(net, rng)
    net.permute_io(input_perm=np.array([1, 2, 3, 4, 0]), output_perm=np.array([1, 0, 2]))
    X, T = classification_data(rng, net)
    check_network_gradients(net, X, T, softmax_cross_entropy, rng)


def test_permute_io_rejects_conv_first_layer():
    rng = np.random.RandomState(6)
    net = cnn(rng)
    with pytest.raises(ValueError):
        net.permute_io(input_perm=rng.permutation(72))


@pytest.mark.parametrize("index", [0, 1])
def test_permute_hidden_preserves_function_mlp(index):
    rng = np.random.RandomState(7)
    net = mlp(rng)
    randomise_biases(net, rng)
    X = rng.normal(size=(5, 5))
    before = net.forward(X)
    n_units = net.weight_layers[index].W.shape[1]
    W = net.weight_layers[index].W.copy()
    net.permute_hidden(index, np.roll(np.arange(n_units), 2))
    assert not np.array_equal(net.weight_layers[index].W, W)
    np.testing.assert_allclose(net.forward(X), before, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_permute_hidden_preserves_function_cnn(index):
    """conv->conv, conv->flatten->dense (channel blocks) and dense->dense."""
    rng = np.random.RandomState(8)
    net = cnn(rng)
    randomise_biases(net, rng)
    X = rng.normal(size=(3, 72))
    before = net.forward(X)
    layer = net.weight_layers[index]
    n_units = layer.W.shape[0] if layer.kind == "conv" else layer.W.shape[1]
    W_next = net.weight_layers[index + 1].W.copy()
    net.permute_hidden(index, np.roll(np.arange(n_units), 1))
    assert not np.array_equal(net.weight_layers[index + 1].W, W_next)
    np.testing.assert_allclose(net.forward(X), before, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------- output affine fold
def test_fold_output_affine_with_permutations_and_masks():
    rng = np.random.RandomState(9)
    net = mlp(rng)
    randomise_biases(net, rng)
    net.permute_io(input_perm=rng.permutation(5), output_perm=np.array([2, 0, 1]))
    last = net.weight_layers[-1]
    last.mask[...] = rng.rand(*last.mask.shape) > 0.4
    net.apply_masks()
    mask, zeros = last.mask.copy(), last.W == 0.0
    X = rng.normal(size=(6, 5))
    before = net.forward(X)
    scale, offset = np.array([2.0, 0.5, 30.0]), np.array([-1.0, 4.0, 100.0])
    assert net.fold_output_affine(scale, offset) is net
    np.testing.assert_allclose(net.forward(X), before * scale + offset, rtol=1e-12)
    np.testing.assert_array_equal(last.mask, mask)
    np.testing.assert_array_equal(last.W == 0.0, zeros)  # zero tiles stay zero tiles
    net.fold_output_affine(1.0 / scale, -offset / scale)  # and it is undone
    np.testing.assert_allclose(net.forward(X), before, rtol=1e-12, atol=1e-12)


def test_fold_output_affine_rejects_bad_maps():
    rng = np.random.RandomState(10)
    net = mlp(rng)
    for scale in ([1.0, 0.0, 1.0], [1.0, -2.0, 1.0], [np.inf, 1.0, 1.0]):
        with pytest.raises(ValueError, match="positive"):
            net.fold_output_affine(scale, 0.0)
    with pytest.raises(ValueError):
        net.fold_output_affine([1.0, 2.0], 0.0)  # one factor per output
    conv_last = Network([Conv2D(1, 2, 3), Activation("square"), Conv2D(2, 1, 3)], (1, 4, 4))
    with pytest.raises(ValueError, match="dense"):
        conv_last.build(rng).fold_output_affine(1.0, 0.0)


# ---------------------------------------------------------- calibration
@pytest.mark.parametrize("input_scale", [0.01, 1.0, 100.0])
def test_calibrate_sets_square_preactivation_std(input_scale):
    rng = np.random.RandomState(11)
    net = Network([Dense(5, 6), Activation("square"), Dense(6, 4), Activation("square"),
                   Dense(4, 3)], (5,)).build(rng)
    X = rng.normal(size=(2000, 5)) * input_scale + input_scale
    W_out = net.weight_layers[-1].W.copy()
    assert net.calibrate(X) is net
    z1 = X @ net.weight_layers[0].W
    z2 = (z1 ** 2) @ net.weight_layers[1].W
    std = Activation("square").init_std
    # estimated on at most 1000 evenly spaced rows, so close but not exact on all 2000
    np.testing.assert_allclose([z1.std(), z2.std()], std, rtol=0.05)
    np.testing.assert_array_equal(net.weight_layers[-1].W, W_out)  # output layer untouched
    assert all(np.all(layer.b == 0.0) for layer in net.weight_layers)


def test_calibrate_leaves_other_activations_and_nonzero_biases_alone():
    rng = np.random.RandomState(12)
    net = mlp(rng, act="tanh")  # tanh, then a poly layer: no init_std
    W = [layer.W.copy() for layer in net.weight_layers]
    net.calibrate(rng.normal(size=(50, 5)) * 100)
    for layer, W0 in zip(net.weight_layers, W):
        np.testing.assert_array_equal(layer.W, W0)
    net = mlp(rng)  # square first layer, but a bias already set: rescaling would not be exact
    randomise_biases(net, rng)
    W0 = net.weight_layers[0].W.copy()
    net.calibrate(rng.normal(size=(50, 5)) * 100)
    np.testing.assert_array_equal(net.weight_layers[0].W, W0)
    assert Activation("square").init_std == 0.35
    assert all(Activation(a).init_std is None for a in ("poly", "relu", "tanh", "identity"))


def test_calibrate_constant_input_is_a_no_op():
    rng = np.random.RandomState(13)
    net = mlp(rng)
    W = [layer.W.copy() for layer in net.weight_layers]
    net.calibrate(np.zeros((10, 5)))
    for layer, W0 in zip(net.weight_layers, W):
        np.testing.assert_array_equal(layer.W, W0)
