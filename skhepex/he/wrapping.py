"""What HEPredictor wraps: client-side preprocessing, the network, a target transform.

A fitted estimator is split into the parts that run on the client in
plaintext (the steps of a ``Pipeline`` before the network, and the inverse
of a ``TransformedTargetRegressor``'s target transform after decryption) and
the network that runs encrypted.
"""
from __future__ import annotations

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ..estimators import get_network

__all__ = ["WrappedParts", "split_estimator"]


class WrappedParts:
    """The parts of a fitted estimator as encrypted inference uses them.

    Parameters
    ----------
    holder : estimator
        The object holding the network (a network, an ``HEPEx``, ...).
    network : estimator
        The fitted skhepex network.
    preprocessor : Pipeline or None
        Client-side steps before the network.
    target_transformer : transformer or None
        Fitted target transformer of a ``TransformedTargetRegressor``.
    """

    def __init__(self, holder, network, preprocessor=None, target_transformer=None):
        self.holder = holder
        self.network = network
        self.preprocessor = preprocessor
        self.target_transformer = target_transformer

    def inverse_target(self, y):
        """Undo the target transform on predictions (identity without one).

        Parameters
        ----------
        y : ndarray of shape (n_samples,) or (n_samples, n_targets)
            Predictions in the transformed target space.

        Returns
        -------
        y : ndarray
            Predictions in the original target space, same shape.
        """
        if self.target_transformer is None:
            return y
        y = np.asarray(y)
        out = self.target_transformer.inverse_transform(y.reshape(y.shape[0], -1))
        return out.reshape(y.shape)


def _steps(pipe):
    return list(pipe.steps[:-1]) if isinstance(pipe, Pipeline) else []


def split_estimator(est):
    """Split a fitted estimator into preprocessing, network and target transform.

    Parameters
    ----------
    est : estimator
        A fitted skhepex network, ``HEPEx``, ``Pipeline`` ending in one, or a
        ``TransformedTargetRegressor`` around one (itself possibly last in a
        ``Pipeline``).

    Returns
    -------
    parts : WrappedParts
        The holder of the network, the network, the preprocessing (or None)
        and the fitted target transformer (or None).
    """
    steps, target = [], None
    inner = est
    if isinstance(inner, Pipeline) and isinstance(inner.steps[-1][1],
                                                  TransformedTargetRegressor):
        steps, inner = _steps(inner), inner.steps[-1][1]
    if isinstance(inner, TransformedTargetRegressor):
        check_is_fitted(inner)
        target, inner = inner.transformer_, inner.regressor_
    net = get_network(inner)
    steps += _steps(inner)
    holder = inner.steps[-1][1] if isinstance(inner, Pipeline) else inner
    return WrappedParts(holder, net, Pipeline(steps) if steps else None, target)
