"""Shared machinery of the pruning steps.

Every step is a small scikit-learn ``BaseEstimator`` with one public method,
:meth:`BasePruningStep.prune`, which takes a *fitted* skhepex network and the
training data and returns a new fitted network; the input network is never
modified. The tiles are always those of :class:`skhepex.tiling.TileLayout`.
"""

import copy

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from ..tiling import TileLayout, _check_tile_shape

__all__ = ["BasePruningStep", "tile_norms", "weight_sparsity", "block_l21"]


def _check_network(estimator):
    """Raise unless ``estimator`` is a fitted skhepex network."""
    if not hasattr(estimator, "network_") or not hasattr(estimator, "_fine_tune"):
        if hasattr(estimator, "_fine_tune"):
            raise NotFittedError(
                f"This {type(estimator).__name__} instance is not fitted yet; the "
                "pruning steps need a fitted network.")
        raise TypeError(
            "The pruning steps work on fitted skhepex networks (MLPClassifier, "
            f"MLPRegressor, Autoencoder, CNNClassifier); got {type(estimator).__name__}.")


def tile_norms(layout, index):
    """Frobenius norm of every tile of weight layer ``index`` of ``layout``.

    Parameters
    ----------
    layout : TileLayout
        The tiling.
    index : int
        Weight-layer index.

    Returns
    -------
    norms : ndarray of shape ``layout.layers[index].grid``
        Norm of each tile of the (out, in) matrix the HE engine multiplies;
        non-zero exactly where ``tile_mask`` is True.
    """
    return layout.tile_norms(index)


def block_l21(layout):
    """Sum over layers of (sum of tile norms) / (Frobenius norm of the layer).

    A scale-free measure of how concentrated the weight mass is in few tiles:
    for a fixed set of weights it is smallest when the mass sits in as few
    tiles as possible (it equals the number of non-zero tiles when all tiles
    carry equal mass, and 1 per layer when one tile carries it all).
    """
    total = 0.0
    for i in range(len(layout.layers)):
        norms = tile_norms(layout, i)
        fro = np.sqrt(np.sum(norms * norms))
        if fro > 0:
            total += norms.sum() / fro
    return float(total)


def weight_sparsity(estimator):
    """Fraction of exactly-zero weights over all weight layers (biases excluded)."""
    layers = estimator.network_.weight_layers
    n = sum(layer.W.size for layer in layers)
    zeros = sum(int(np.sum(layer.W == 0)) for layer in layers)
    return zeros / n if n else 0.0


class BasePruningStep(BaseEstimator):
    """Base class of the pruning steps (not for direct use).

    Subclasses implement ``_prune(estimator, X, y, tile_shape)`` which modifies
    the (already copied) network in place and returns it.
    """

    def prune(self, estimator, X, y=None, tile_shape=(8, 8)):
        """Apply this step to a copy of a fitted network.

        Parameters
        ----------
        estimator : estimator
            A fitted skhepex network (``MLPClassifier``, ``MLPRegressor``,
            ``Autoencoder`` or ``CNNClassifier``). It is not modified.
        X : array-like of shape (n_samples, n_features)
            Training data, used for fine-tuning.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), default=None
            Training targets (``None`` for an autoencoder).
        tile_shape : tuple of int (t1, t2), default=(8, 8)
            Tile shape of the :class:`~skhepex.tiling.TileLayout` the step
            prunes for.

        Returns
        -------
        estimator : estimator
            A new fitted network of the same class, pruned by this step.
        """
        self._validate_params()
        _check_network(estimator)
        tile_shape = _check_tile_shape(tile_shape)
        if y is not None and getattr(estimator, "_is_classifier", False):
            y = np.asarray(y)
            if y.ndim == 2 and y.shape[1] == 1:  # column vector, as fit accepts
                y = y.ravel()
        est = copy.deepcopy(estimator)
        est = self._prune(est, X, y, tile_shape)
        est.network_.apply_masks()
        layout = TileLayout(est, tile_shape)
        self.tile_shape_ = tile_shape
        self.n_tiles_ = layout.n_tiles
        self.n_nonzero_tiles_ = layout.n_nonzero_tiles
        self.tile_sparsity_ = 1.0 - self.n_nonzero_tiles_ / max(self.n_tiles_, 1)
        self.sparsity_ = weight_sparsity(est)
        return est

    def _prune(self, estimator, X, y, tile_shape):  # pragma: no cover - abstract
        raise NotImplementedError


def _unit_in(layer, u):
    """Incoming weights (and mask) of output unit ``u`` of ``layer``."""
    return (slice(None), u) if layer.kind == "dense" else (u,)


def _unit_out(layer, u, n_units):
    """Outgoing weights of input unit ``u`` of the next ``layer``."""
    if layer.kind == "conv":
        return (slice(None), u)
    block = layer.W.shape[0] // n_units
    return (slice(u * block, (u + 1) * block),)


def remove_dead_units(estimator):
    """Mask weights that cannot influence the output (function-preserving).

    For every hidden unit (neuron or channel) of the network:

    - if it has no non-zero outgoing weight, its incoming weights are useless
      and are masked;
    - if it has no non-zero incoming weight, its activation is the constant
      ``act(b)``; when the next layer is dense, that constant's contribution
      is folded into the next layer's bias and its outgoing weights are
      masked.

    Repeated until nothing changes (removals cascade through layers). Tiles
    holding only such weights become empty without changing any prediction.

    Parameters
    ----------
    estimator : estimator
        A fitted skhepex network, modified in place.

    Returns
    -------
    n_removed : int
        Number of non-zero weights masked.
    """
    net = estimator.network_
    stages = net.stages()
    layers = net.weight_layers
    removed = 0
    changed = True
    while changed:
        changed = False
        for l in range(len(layers) - 1):
            A, B = layers[l], layers[l + 1]
            n_units = A.W.shape[1] if A.kind == "dense" else A.W.shape[0]
            act = stages[l].activation
            for u in range(n_units):
                wi, wo = _unit_in(A, u), _unit_out(B, u, n_units)
                has_in = np.any(A.W[wi] != 0)
                has_out = np.any(B.W[wo] != 0)
                if has_in and not has_out:
                    removed += int(np.sum(A.W[wi] != 0))
                    A.mask[wi] = False
                    A.W[wi] = 0.0
                    changed = True
                elif has_out and not has_in and B.kind == "dense":
                    c = float(A.b[u]) if act is None else \
                        float(act.forward(np.array([[A.b[u]]]))[0, 0])
                    B.b += c * B.W[wo].sum(axis=0)
                    removed += int(np.sum(B.W[wo] != 0))
                    B.mask[wo] = False
                    B.W[wo] = 0.0
                    changed = True
    return removed
