"""Gradient checks and HE linear-map checks of :mod:`skhepex.nn.layers`.

Every backward pass is compared with central finite differences (float64,
``eps = 1e-6``) of the scalar ``L = sum(R * layer.forward(x))`` for a fixed
random ``R``: ``layer.backward(R)`` must return ``dL/dx`` and store
``dL/dW`` / ``dL/db`` in ``gW`` / ``gb``.
"""

import numpy as np
import pytest

from skhepex.nn import Activation, AvgPool2D, Conv2D, Dense, Flatten, Network
from nn_checks import ATOL, RTOL, num_grad



def check_layer(layer, x, rng):
    """Compare the analytic input/parameter gradients of ``layer`` with finite differences."""
    out = layer.forward(x, train=True)
    R = rng.normal(size=out.shape)
    gx = layer.backward(R)
    assert gx.shape == x.shape
    grads = [g.copy() for g in layer.grads()]

    def loss():
        return float(np.sum(R * layer.forward(x)))

    np.testing.assert_allclose(gx, num_grad(loss, x), rtol=RTOL, atol=ATOL,
                               err_msg=f"input gradient of {type(layer).__name__}")
    for name, p, g in zip(("W", "b"), layer.params(), grads):
        assert g.shape == p.shape
        np.testing.assert_allclose(g, num_grad(loss, p), rtol=RTOL, atol=ATOL,
                                   err_msg=f"{name} gradient of {type(layer).__name__}")
    return out


def randomise_bias(layer, rng):
    # the Glorot init leaves b at zero; a non-zero bias makes the checks stronger
    layer.b[...] = rng.normal(size=layer.b.shape)


# ----------------------------------------------------------------- Dense
@pytest.mark.parametrize("n_in,n_out,n", [(4, 3, 5), (1, 6, 2), (7, 1, 3)])
def test_dense_gradients(n_in, n_out, n):
    rng = np.random.RandomState(0)
    layer = Dense(n_in, n_out).build(rng)
    randomise_bias(layer, rng)
    x = rng.normal(size=(n, n_in))
    out = check_layer(layer, x, rng)
    np.testing.assert_allclose(out, x @ layer.W + layer.b, rtol=1e-13, atol=1e-13)


def test_dense_backward_overwrites_gradients():
    """gW/gb are assigned, not accumulated: two backward calls give the same result."""
    rng = np.random.RandomState(1)
    layer = Dense(3, 2).build(rng)
    x = rng.normal(size=(4, 3))
    R = rng.normal(size=(4, 2))
    layer.forward(x, train=True)
    layer.backward(R)
    gW, gb = layer.gW.copy(), layer.gb.copy()
    ids = (id(layer.gW), id(layer.gb))
    layer.backward(R)
    np.testing.assert_array_equal(layer.gW, gW)
    np.testing.assert_array_equal(layer.gb, gb)
    # stored in place: the arrays returned by grads() stay valid across steps
    assert (id(layer.gW), id(layer.gb)) == ids
    assert layer.grads()[0] is layer.gW and layer.grads()[1] is layer.gb


# ----------------------------------------------------------------- Conv2D
CONV_CASES = [
    # (c_in, c_out, k, stride, padding, H, W)
    (2, 3, 3, 1, 1, 6, 5),
    (2, 3, 3, 1, 0, 6, 5),
    (2, 2, 3, 2, 1, 6, 5),
    (2, 2, 3, 2, 0, 7, 6),
    (1, 2, 2, 2, 0, 6, 6),
    (1, 2, 2, 1, 1, 4, 5),
    (3, 2, 1, 1, 0, 3, 4),
    (1, 2, 5, 2, 1, 7, 8),
]


@pytest.mark.parametrize("c_in,c_out,k,s,p,h,w", CONV_CASES)
def test_conv2d_gradients(c_in, c_out, k, s, p, h, w):
    rng = np.random.RandomState(k * 10 + s + p)
    layer = Conv2D(c_in, c_out, kernel_size=k, stride=s, padding=p).build(rng)
    randomise_bias(layer, rng)
    x = rng.normal(size=(2, c_in, h, w))
    out = check_layer(layer, x, rng)
    assert out.shape[1:] == layer.output_shape((c_in, h, w))


def conv_reference(x, W, b, s, p):
    """Direct loop implementation of a cross-correlation with stride and zero padding."""
    n, c, h, w = x.shape
    co, _, k, _ = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = np.zeros((n, co, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * s:i * s + k, j * s:j * s + k]
            out[:, :, i, j] = np.einsum("nckl,ockl->no", patch, W) + b
    return out


@pytest.mark.parametrize("c_in,c_out,k,s,p,h,w", CONV_CASES)
def test_conv2d_forward_matches_direct_convolution(c_in, c_out, k, s, p, h, w):
    rng = np.random.RandomState(3)
    layer = Conv2D(c_in, c_out, kernel_size=k, stride=s, padding=p).build(rng)
    randomise_bias(layer, rng)
    x = rng.normal(size=(2, c_in, h, w))
    np.testing.assert_allclose(layer.forward(x), conv_reference(x, layer.W, layer.b, s, p),
                               rtol=1e-12, atol=1e-12)


# -------------------------------------------------------------- AvgPool2D
@pytest.mark.parametrize("pool,h,w", [(2, 4, 6), (2, 5, 7), (3, 6, 6), (4, 3, 5), (1, 3, 2)])
def test_avgpool_gradients(pool, h, w):
    rng = np.random.RandomState(pool)
    layer = AvgPool2D(pool)
    x = rng.normal(size=(2, 3, h, w))
    out = check_layer(layer, x, rng)
    assert out.shape[1:] == layer.output_shape((3, h, w))
    assert layer.params() == [] and layer.grads() == []


def test_avgpool_forward_values():
    x = np.arange(2 * 5 * 5, dtype=float).reshape(1, 2, 5, 5)
    out = AvgPool2D(2).forward(x)
    # the last row and column are cropped
    expected = np.array([[[(0 + 1 + 5 + 6) / 4, (2 + 3 + 7 + 8) / 4],
                          [(10 + 11 + 15 + 16) / 4, (12 + 13 + 17 + 18) / 4]]])
    np.testing.assert_allclose(out[0, :1], expected)
    np.testing.assert_allclose(out[0, 1], expected[0] + 25)


# ---------------------------------------------------------------- Flatten
def test_flatten_gradients_and_order():
    rng = np.random.RandomState(0)
    layer = Flatten()
    x = rng.normal(size=(3, 2, 3, 4))
    out = check_layer(layer, x, rng)
    assert out.shape == (3, 24)
    # channel-major: feature index c*H*W + i*W + j
    np.testing.assert_array_equal(out[:, 1 * 12 + 2 * 4 + 3], x[:, 1, 2, 3])
    assert layer.output_shape((2, 3, 4)) == (24,)


# ------------------------------------------------- HE linear stages (matrix/bias)
def _stage_nets(rng):
    mlp = Network([Dense(5, 4), Activation("square"), Dense(4, 3), Activation("poly"),
                   Dense(3, 2)], (5,))
    cnn = Network([Conv2D(2, 3, 3, stride=1, padding=1), AvgPool2D(2), Activation("square"),
                   Conv2D(3, 2, 2, stride=2, padding=1), Activation("poly"), Flatten(),
                   Dense(8, 4), Activation("square"), Dense(4, 3)], (2, 6, 6))
    cnn_nopool = Network([Conv2D(1, 2, 3, stride=2, padding=0), Activation("identity"),
                          Flatten(), Dense(8, 3)], (1, 5, 6))
    nets = [mlp.build(rng), cnn.build(rng), cnn_nopool.build(rng)]
    for net in nets:
        for layer in net.weight_layers:
            randomise_bias(layer, rng)
    return nets


@pytest.mark.parametrize("which", [0, 1, 2])
def test_stage_matrices_reproduce_forward(which):
    """Chaining ``matrix() @ h + bias()`` and the activations reproduces ``Network.forward``."""
    rng = np.random.RandomState(0)
    net = _stage_nets(rng)[which]
    stages = net.stages()
    assert len(stages) == len(net.weight_layers)
    n = 3
    x = rng.normal(size=(n, int(np.prod(net.input_shape))))
    h = x
    for st in stages:
        M, c = st.matrix(), st.bias()
        assert M.shape == (st.n_out, st.n_in) and c.shape == (st.n_out,)
        z = h @ M.T + c
        upto = None if st.activation is None else net.layers.index(st.activation)
        ref = net.forward(x, upto=upto).reshape(n, -1)
        np.testing.assert_allclose(z, ref, rtol=1e-12, atol=1e-12)
        h = z if st.activation is None else st.activation.forward(z)
    np.testing.assert_allclose(h, net.forward(x), rtol=1e-12, atol=1e-12)


def test_dense_stage_matrix_is_transposed_weight():
    rng = np.random.RandomState(1)
    net = _stage_nets(rng)[0]
    for st, layer in zip(net.stages(), net.weight_layers):
        np.testing.assert_array_equal(st.matrix(), layer.W.T)
        np.testing.assert_allclose(st.bias(), layer.b, rtol=0, atol=1e-15)


def test_conv_stage_bias_is_channel_bias():
    """A conv(+pool) stage's bias is the channel bias repeated over positions."""
    rng = np.random.RandomState(2)
    net = _stage_nets(rng)[1]
    for st in net.stages()[:2]:
        layer = st.weight_layer
        assert layer.kind == "conv"
        np.testing.assert_allclose(st.bias(), np.repeat(layer.b, st.out_unit_size),
                                   rtol=1e-14, atol=1e-14)
