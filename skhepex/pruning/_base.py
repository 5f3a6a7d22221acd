"""Shared machinery of the pruning steps.

Every step is a small scikit-learn ``BaseEstimator`` with one public method,
:meth:`BasePruningStep.prune`, which takes a *fitted* skhepex network and the
training data and returns a new fitted network; the input network is never
modified. The tiles are always those of :class:`skhepex.tiling.TileLayout`.
"""

import copy

import numpy as np
from sklearn.base import BaseEstimator, is_classifier
from sklearn.exceptions import NotFittedError

from ..estimators import check_network
from ..tiling import TileLayout, check_tile_shape

__all__ = ["BasePruningStep", "tile_norms", "weight_sparsity", "block_l21",
           "remove_dead_units", "sparsity_schedule", "n_to_drop", "drop_lowest",
           "keep_best", "split_like", "fine_tune_epochs"]


def _check_input_network(estimator):
    """Raise unless ``estimator`` is a fitted skhepex network (message names the steps)."""
    try:
        check_network(estimator, fitted=True)
    except NotFittedError as exc:
        raise NotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet; the "
            "pruning steps need a fitted network.") from exc
    except TypeError as exc:
        raise TypeError(f"The pruning steps work on fitted skhepex networks. {exc}") from exc


def tile_norms(layout, index):
    """Frobenius norm of every tile of weight layer ``index`` of ``layout``.

    Parameters
    ----------
    layout : TileLayout
        Tiling of a fitted network.
    index : int
        Position of the layer in ``layout.layers``.

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

    Parameters
    ----------
    layout : TileLayout
        Tiling of a fitted network.

    Returns
    -------
    concentration : float
        The sum over weight layers; layers without weights count 0.
    """
    total = 0.0
    for i in range(len(layout.layers)):
        norms = tile_norms(layout, i)
        fro = np.sqrt(np.sum(norms * norms))
        if fro > 0:
            total += norms.sum() / fro
    return float(total)


def weight_sparsity(estimator):
    """Fraction of exactly-zero weights over all weight layers (biases excluded).

    Parameters
    ----------
    estimator : estimator
        A fitted skhepex network.

    Returns
    -------
    sparsity : float
        Zero weights divided by all weights (0 for a network without weights).
    """
    layers = estimator.network_.weight_layers
    n = sum(layer.W.size for layer in layers)
    zeros = sum(int(np.sum(layer.W == 0)) for layer in layers)
    return zeros / n if n else 0.0


def sparsity_schedule(sparsity, n_steps, kind="cubic"):
    """Target sparsity of every round of gradual pruning.

    Parameters
    ----------
    sparsity : float
        Sparsity reached after the last round.
    n_steps : int
        Number of rounds.
    kind : {"cubic", "linear"}, default="cubic"
        ``"cubic"`` (Zhu & Gupta, 2017): ``sparsity * (1 - (1 - t) ** 3)`` at
        round ``t = i / n_steps``, which prunes fast first; ``"linear"``:
        ``sparsity * t``.

    Returns
    -------
    targets : ndarray of shape (n_steps,)
        Target of each round, increasing to ``sparsity``.
    """
    fr = np.arange(1, n_steps + 1) / n_steps
    if kind == "cubic":
        return sparsity * (1.0 - (1.0 - fr) ** 3)
    return sparsity * fr


def n_to_drop(fraction, n, n_keep=1):
    """How many of ``n`` items pruning to ``fraction`` removes.

    Parameters
    ----------
    fraction : float
        Target fraction of removed items.
    n : int
        Number of items.
    n_keep : int, default=1
        Items that must survive (one per layer).

    Returns
    -------
    k : int
        ``round(fraction * n)``, but at most ``n - n_keep``.
    """
    return min(int(round(fraction * n)), n - n_keep)


def fine_tune_epochs(value, estimator):
    """Epochs of one fine-tuning round: ``value``, or its ``"auto"`` rule.

    Parameters
    ----------
    value : int or "auto"
        A step's ``fine_tune_iter``.
    estimator : estimator
        The fitted network the step received.

    Returns
    -------
    epochs : int
        ``value`` itself when it is an int; for ``"auto"``, a third of the
        epochs the network has been trained so far (its ``n_iter_``), at
        least 20 and at most 200: a network that needed long to train needs
        long to recover (measured: the digits autoencoder recovers within
        2.5% of its dense R² only with ~4x the MLP's epochs).
    """
    if not isinstance(value, str):
        return int(value)
    n = int(getattr(estimator, "n_iter_", 0) or 0)
    return int(min(max(20, round(n / 3)), 200))


def split_like(flat, parts):
    """Cut a concatenation back into pieces as long as ``parts``.

    Parameters
    ----------
    flat : ndarray of shape (sum of the sizes of parts,)
        Values of all parts, concatenated.
    parts : list of ndarray
        The arrays whose sizes give the pieces.

    Returns
    -------
    pieces : list of ndarray
        Consecutive views of ``flat``, one per part.
    """
    pieces, start = [], 0
    for part in parts:
        pieces.append(flat[start:start + part.size])
        start += part.size
    return pieces


def keep_best(drop, keys):
    """Never drop everything: spare the item with the largest key.

    Parameters
    ----------
    drop : ndarray of bool of shape (n,)
        Items to drop.
    keys : ndarray of shape (n,)
        Importance of every item.

    Returns
    -------
    drop : ndarray of bool of shape (n,)
        ``drop`` itself when it spares an item, else a copy sparing
        ``argmax(keys)``.
    """
    if drop.all():
        drop = drop.copy()
        drop[np.argmax(keys)] = False
    return drop


def drop_lowest(keys, fraction, scope="layer"):
    """The lowest-keyed items to prune, never all of a layer.

    Parameters
    ----------
    keys : list of ndarray
        One 1-D array per layer: the importance of every item (weight or
        pruning unit); lower keys are dropped first, ties in index order.
    fraction : float
        Target fraction of dropped items, per layer or over all layers.
    scope : {"layer", "global"}, default="layer"
        Rank the items within every layer or over all layers together. Every
        layer keeps at least its item with the largest key.

    Returns
    -------
    drops : list of ndarray of bool
        One array per layer, True for the items to drop.
    """
    def lowest(values, k):
        d = np.zeros(values.size, dtype=bool)
        d[np.argsort(values, kind="stable")[:k]] = True
        return d

    if scope == "layer":
        drops = [lowest(k, n_to_drop(fraction, k.size)) for k in keys]
    else:
        flat = np.concatenate(keys)
        drops = split_like(lowest(flat, n_to_drop(fraction, flat.size, len(keys))), keys)
    return [keep_best(d, k) for d, k in zip(drops, keys)]


class BasePruningStep(BaseEstimator):
    """Base class of the pruning steps (not for direct use).

    Subclasses implement ``_prune(estimator, X, y, tile_shape)`` which modifies
    the (already copied) network in place and returns it.

    Attributes
    ----------
    sparsity_ : float
        Weight sparsity of the network returned by the last :meth:`prune`.
    n_nonzero_tiles_ : int
        Its weight tiles holding a non-zero weight (weight ciphertexts).
    n_tiles_ : int
        All weight tiles of its layout.
    tile_sparsity_ : float
        Fraction of all-zero tiles.
    tile_shape_ : tuple of int
        Tile shape used by the last :meth:`prune`.
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
            A new fitted network of the same class, pruned by this step. The
            step also records ``tile_shape_``, ``n_tiles_``,
            ``n_nonzero_tiles_``, ``tile_sparsity_`` and ``sparsity_`` of it
            (see the class attributes).
        """
        self._validate_params()
        _check_input_network(estimator)
        tile_shape = check_tile_shape(tile_shape)
        if y is not None and is_classifier(estimator):
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
