"""Linear layers of the NumPy network core: dense, 2-D convolution, pooling.

Every weight tensor ``W`` has a boolean ``mask`` of the same shape; masked
weights are kept exactly zero by :meth:`WeightLayer.apply_mask`, which the
training loop calls after every update. The pruning steps rely on it.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class WeightLayer:
    """Base class for layers holding a weight tensor ``W``, bias ``b``, ``mask``."""

    has_weights = True
    kind = None

    def init_params(self, rng, fan_in, fan_out, shape, gain=1.0):
        """Glorot-uniform initialisation, scaled by ``gain``."""
        bound = gain * np.sqrt(6.0 / (fan_in + fan_out))
        self.W = rng.uniform(-bound, bound, size=shape)
        self.b = np.zeros(shape[1] if self.kind == "dense" else shape[0])
        self.mask = np.ones(shape, dtype=bool)
        self.gW = np.zeros_like(self.W)
        self.gb = np.zeros_like(self.b)

    def apply_mask(self):
        """Set every masked weight to exactly zero."""
        self.W[~self.mask] = 0.0

    def params(self):
        """Trainable arrays (updated in place by the optimizers)."""
        return [self.W, self.b]

    def grads(self):
        """Gradients matching :meth:`params`."""
        return [self.gW, self.gb]


class Dense(WeightLayer):
    """Fully connected layer ``y = x @ W + b`` with ``W`` of shape (n_in, n_out).

    The weight orientation is scikit-learn's (``coefs_[i]`` has shape
    ``(n_in, n_out)``); the tiling layout works on ``W.T`` of shape (out, in).
    """

    kind = "dense"

    def __init__(self, n_in, n_out):
        self.n_in = int(n_in)
        self.n_out = int(n_out)

    def build(self, rng, gain=1.0):
        """Initialise parameters."""
        self.init_params(rng, self.n_in, self.n_out, (self.n_in, self.n_out), gain)
        return self

    def output_shape(self, input_shape):
        """Shape of one output sample."""
        return (self.n_out,)

    def forward(self, x, train=False):
        """Forward pass."""
        if train:
            self._x = x
        return x @ self.W + self.b

    def backward(self, grad):
        """Store weight gradients and return the input gradient."""
        self.gW[...] = self._x.T @ grad
        self.gb[...] = grad.sum(axis=0)
        return grad @ self.W.T


def _pad(x, p):
    if p == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))


class Conv2D(WeightLayer):
    """2-D convolution, ``W`` of shape (out_channels, in_channels, k, k).

    Implemented with a stride-trick ``im2col`` (no loop over samples).
    """

    kind = "conv"

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=1):
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)
        self.padding = int(padding)

    def build(self, rng, gain=1.0):
        """Initialise parameters."""
        k = self.kernel_size
        shape = (self.out_channels, self.in_channels, k, k)
        self.init_params(rng, self.in_channels * k * k, self.out_channels * k * k,
                         shape, gain)
        return self

    def output_shape(self, input_shape):
        """Shape (C, H, W) of one output sample."""
        _, h, w = input_shape
        k, s, p = self.kernel_size, self.stride, self.padding
        ho = (h + 2 * p - k) // s + 1
        wo = (w + 2 * p - k) // s + 1
        if ho < 1 or wo < 1:
            raise ValueError(
                f"Convolution with kernel {k}, stride {s}, padding {p} does not fit "
                f"an input of spatial size {h}x{w}."
            )
        return (self.out_channels, ho, wo)

    def _cols(self, x):
        k, s = self.kernel_size, self.stride
        xp = _pad(x, self.padding)
        win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]
        n, c, ho, wo = win.shape[:4]
        # (n, ho, wo, c, k, k) -> rows are output positions, columns are taps
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * k * k)
        return cols, (n, ho, wo)

    def forward(self, x, train=False):
        """Forward pass on (n, C, H, W)."""
        cols, (n, ho, wo) = self._cols(x)
        wmat = self.W.reshape(self.out_channels, -1)
        out = cols @ wmat.T + self.b
        if train:
            self._cols_cache = cols
            self._xshape = x.shape
        return out.reshape(n, ho, wo, self.out_channels).transpose(0, 3, 1, 2)

    def backward(self, grad):
        """Store weight gradients and return the input gradient."""
        n, co, ho, wo = grad.shape
        g = grad.transpose(0, 2, 3, 1).reshape(n * ho * wo, co)
        self.gW[...] = (g.T @ self._cols_cache).reshape(self.W.shape)
        self.gb[...] = g.sum(axis=0)
        dcols = g @ self.W.reshape(co, -1)
        k, s, p = self.kernel_size, self.stride, self.padding
        _, c, h, w = self._xshape
        dcols = dcols.reshape(n, ho, wo, c, k, k)
        dxp = np.zeros((n, c, h + 2 * p, w + 2 * p))
        for dy in range(k):
            for dx in range(k):
                dxp[:, :, dy:dy + s * ho:s, dx:dx + s * wo:s] += (
                    dcols[:, :, :, :, dy, dx].transpose(0, 3, 1, 2)
                )
        if p:
            dxp = dxp[:, :, p:-p, p:-p]
        return dxp


class AvgPool2D:
    """Non-overlapping average pooling (a linear map, HE-friendly).

    The window is ``min(pool_size, H) x min(pool_size, W)``; spatial sizes that
    are not multiples of it are cropped.
    """

    has_weights = False
    kind = "avgpool"

    def __init__(self, pool_size=2):
        self.pool_size = int(pool_size)

    def _window(self, h, w):
        return min(self.pool_size, h), min(self.pool_size, w)

    def output_shape(self, input_shape):
        """Shape (C, H, W) of one output sample."""
        c, h, w = input_shape
        ph, pw = self._window(h, w)
        return (c, h // ph, w // pw)

    def forward(self, x, train=False):
        """Forward pass on (n, C, H, W)."""
        n, c, h, w = x.shape
        ph, pw = self._window(h, w)
        ho, wo = h // ph, w // pw
        if train:
            self._xshape = x.shape
        x = x[:, :, :ho * ph, :wo * pw]
        return x.reshape(n, c, ho, ph, wo, pw).mean(axis=(3, 5))

    def backward(self, grad):
        """Spread the gradient back uniformly over each pooling window."""
        n, c, h, w = self._xshape
        ph, pw = self._window(h, w)
        g = np.repeat(np.repeat(grad, ph, axis=2), pw, axis=3) / (ph * pw)
        out = np.zeros(self._xshape)
        out[:, :, :g.shape[2], :g.shape[3]] = g
        return out

    def params(self):
        """No parameters."""
        return []

    def grads(self):
        """No gradients."""
        return []


class Flatten:
    """Flatten (n, C, H, W) to (n, C*H*W), channel-major."""

    has_weights = False
    kind = "flatten"

    def output_shape(self, input_shape):
        """Shape of one output sample."""
        return (int(np.prod(input_shape)),)

    def forward(self, x, train=False):
        """Forward pass."""
        if train:
            self._xshape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad):
        """Backward pass."""
        return grad.reshape(self._xshape)

    def params(self):
        """No parameters."""
        return []

    def grads(self):
        """No gradients."""
        return []
