"""Loss functions: value and gradient with respect to the network output."""

import numpy as np
from scipy.special import logsumexp


def softmax(z):
    """Row-wise softmax, computed stably (the row maximum is subtracted first).

    Parameters
    ----------
    z : ndarray of shape (n_samples, n_classes)
        Logits.

    Returns
    -------
    p : ndarray of shape (n_samples, n_classes)
        Probabilities; every row sums to one.
    """
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(z, y_onehot):
    """Mean cross-entropy of ``softmax(z)`` and its gradient with respect to ``z``.

    The loss is computed as ``logsumexp(z) - z[true]`` per sample, so it
    stays exact (and consistent with the gradient) for confident mistakes,
    where the true-class probability underflows.

    Parameters
    ----------
    z : ndarray of shape (n_samples, n_classes)
        Logits.
    y_onehot : ndarray of shape (n_samples, n_classes)
        One-hot (or any probability-row) targets.

    Returns
    -------
    loss : float
        Mean cross-entropy over the samples.
    grad : ndarray of shape (n_samples, n_classes)
        ``(softmax(z) - y_onehot) / n_samples``.
    """
    n = z.shape[0]
    lse = logsumexp(z, axis=1)
    # sum_k y_k (lse - z_k): equals lse - z[true] for one-hot rows
    loss = float(np.sum(y_onehot * (lse[:, None] - z))) / n
    return loss, (softmax(z) - y_onehot) / n


def squared_error(z, y):
    """Half mean squared error (scikit-learn's ``squared_loss``) and its gradient.

    Parameters
    ----------
    z : ndarray of shape (n_samples, n_outputs)
        Network outputs.
    y : ndarray of shape (n_samples, n_outputs)
        Targets.

    Returns
    -------
    loss : float
        ``0.5 * sum((z - y) ** 2) / n_samples``.
    grad : ndarray of shape (n_samples, n_outputs)
        ``(z - y) / n_samples``.
    """
    n = z.shape[0]
    d = z - y
    return 0.5 * np.sum(d * d) / n, d / n
