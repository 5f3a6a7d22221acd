"""Activation functions with their derivatives.

Only polynomial activations (``"square"`` and ``"poly"``) can be evaluated
under CKKS homomorphic encryption; the others are offered for plaintext use and
comparison.
"""

import numpy as np

#: Activations that have an exact polynomial form (usable under HE).
POLYNOMIAL_ACTIVATIONS = ("square", "poly", "identity")
#: Every activation name the networks accept.
ACTIVATIONS = ("square", "poly", "relu", "tanh", "logistic", "identity")

#: Default coefficients ``(a, b, c)`` of ``a * x**2 + b * x + c`` for ``"poly"``:
#: a smooth, ReLU-like quadratic that keeps activations bounded on [-2, 2].
DEFAULT_POLY_COEFS = (0.125, 0.5, 0.25)


class Activation:
    """Element-wise activation layer.

    Parameters
    ----------
    name : str
        One of :data:`ACTIVATIONS`.
    coefs : tuple of float, default=None
        Coefficients ``(a, b, c)`` for ``name="poly"``; ignored otherwise.
    trainable : bool, default=False
        Whether the ``"poly"`` coefficients are learnt by back-propagation.
    """

    has_weights = False
    kind = "activation"

    def __init__(self, name, coefs=None, trainable=False):
        if name not in ACTIVATIONS:
            raise ValueError(
                f"Unknown activation {name!r}; expected one of {ACTIVATIONS}."
            )
        self.name = name
        self.trainable = bool(trainable) and name == "poly"
        if name == "poly":
            c = DEFAULT_POLY_COEFS if coefs is None else coefs
            self.coefs = np.asarray(c, dtype=float).copy()
            if self.coefs.shape != (3,):
                raise ValueError("poly coefficients must be a tuple (a, b, c).")
        else:
            self.coefs = None
        self._x = None
        self.grad_coefs = None

    @property
    def is_polynomial(self):
        """bool : Whether the activation is a polynomial (HE-compatible)."""
        return self.name in POLYNOMIAL_ACTIVATIONS

    def polynomial(self):
        """Return ``(a, b, c)`` such that the activation is ``a x^2 + b x + c``.

        Returns
        -------
        coefs : tuple of float or None
            ``None`` for a non-polynomial activation.
        """
        if self.name == "square":
            return (1.0, 0.0, 0.0)
        if self.name == "identity":
            return (0.0, 1.0, 0.0)
        if self.name == "poly":
            return tuple(float(v) for v in self.coefs)
        return None

    def forward(self, x, train=False):
        """Apply the activation to ``x``."""
        if train:
            self._x = x
        name = self.name
        if name == "square":
            return x * x
        if name == "poly":
            a, b, c = self.coefs
            return (a * x + b) * x + c
        if name == "relu":
            return np.maximum(x, 0.0)
        if name == "tanh":
            return np.tanh(x)
        if name == "logistic":
            return 0.5 * (1.0 + np.tanh(0.5 * x))
        return x

    def backward(self, grad):
        """Back-propagate ``grad`` through the activation of the last forward."""
        x = self._x
        name = self.name
        if name == "square":
            return grad * 2.0 * x
        if name == "poly":
            a, b, _ = self.coefs
            if self.trainable:
                axes = tuple(range(x.ndim))
                self.grad_coefs = np.array(
                    [np.sum(grad * x * x, axis=axes), np.sum(grad * x, axis=axes),
                     np.sum(grad, axis=axes)]
                )
            return grad * (2.0 * a * x + b)
        if name == "relu":
            return grad * (x > 0)
        if name == "tanh":
            t = np.tanh(x)
            return grad * (1.0 - t * t)
        if name == "logistic":
            s = 0.5 * (1.0 + np.tanh(0.5 * x))
            return grad * s * (1.0 - s)
        return grad

    def params(self):
        """Trainable parameter arrays (the ``poly`` coefficients if trainable)."""
        return [self.coefs] if self.trainable else []

    def grads(self):
        """Gradients matching :meth:`params`."""
        return [self.grad_coefs] if self.trainable else []

    def __repr__(self):
        return f"Activation({self.name!r})"
