"""Loss functions: value and gradient with respect to the network output."""

import numpy as np


def softmax(z):
    """Row-wise softmax."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(z, y_onehot):
    """Mean cross-entropy of ``softmax(z)`` and its gradient with respect to ``z``."""
    p = softmax(z)
    n = z.shape[0]
    loss = -np.sum(y_onehot * np.log(np.clip(p, 1e-12, 1.0))) / n
    return loss, (p - y_onehot) / n


def squared_error(z, y):
    """Half mean squared error (scikit-learn's ``squared_loss``) and its gradient."""
    n = z.shape[0]
    d = z - y
    return 0.5 * np.sum(d * d) / n, d / n
