"""Regrow pruned weights inside the surviving tiles."""

import copy
from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ..tiling import TileLayout
from ._base import BasePruningStep, fine_tune_epochs

__all__ = ["Expander", "expand_masks"]


def _allowed_elements(lt):
    """(out, in) boolean matrix: True where the entry lies in a non-zero tile."""
    r, c = lt.block_shape
    full = np.repeat(np.repeat(lt.tile_mask, r, axis=0), c, axis=1)
    return full[:lt.matrix_shape[0], :lt.matrix_shape[1]]


def _probe_stage(stage):
    """A copy of ``stage`` whose weight layer can be given other weights.

    The layers are shallow copies: rebinding the copy's ``W`` leaves the live
    network's layer (and its weights) untouched.
    """
    probe = copy.copy(stage)
    probe.layers = [copy.copy(layer) for layer in stage.layers]
    i = next(i for i, layer in enumerate(stage.layers) if layer is stage.weight_layer)
    probe.weight_layer = probe.layers[i]
    return probe


def _conv_tap_ok(stage, lt):
    """Boolean (out_c, in_c, k, k): may this kernel tap be non-zero without
    touching a tile that is currently all-zero?

    The unrolled matrix is linear in the kernel; the footprint of tap (a, b)
    of the kernel (o, i) is the channel block (o, i) of the matrix obtained
    with all-ones kernels at that tap only (all-positive, no cancellation).
    The probe kernels go into a copy of the stage: the network is not touched.
    """
    probe = _probe_stage(stage)
    co, ci, k, _ = stage.weight_layer.W.shape
    so, si = stage.out_unit_size, stage.in_unit_size
    forbidden = ~_allowed_elements(lt)
    ok = np.zeros((co, ci, k, k), dtype=bool)
    for a in range(k):
        for b in range(k):
            W = np.zeros_like(stage.weight_layer.W)
            W[:, :, a, b] = 1.0
            probe.weight_layer.W = W
            foot = probe.matrix() != 0
            bad = (foot & forbidden).reshape(co, so, ci, si).any(axis=(1, 3))
            ok[:, :, a, b] = ~bad
    return ok


def expand_masks(estimator, tile_shape):
    """Set every mask to the union of the surviving pruning units (in place).

    Units holding at least one non-zero weight survive; for convolutions a
    kernel tap is released only if its unrolled footprint stays inside the
    currently non-zero tiles. Only the masks change: every weight keeps its
    value (released weights are zero until trained).

    Parameters
    ----------
    estimator : estimator
        A fitted skhepex network, modified in place.
    tile_shape : tuple of int (t1, t2)
        Tile shape of the :class:`~skhepex.tiling.TileLayout`.

    Returns
    -------
    n_regrown : int
        Number of weights released (newly unmasked).
    """
    layout = TileLayout(estimator, tile_shape)
    regrown = 0
    for i, layer in enumerate(estimator.network_.weight_layers):
        lt = layout.layers[i]
        units = lt.weight_units
        nonzero = layer.W != 0
        alive = np.bincount(units.ravel(), nonzero.ravel(), minlength=lt.n_units) > 0
        new_mask = alive[units] | nonzero
        if layer.kind == "conv":
            new_mask &= _conv_tap_ok(layout.stages[i], lt) | nonzero
        regrown += int(np.sum(new_mask & ~layer.mask))
        layer.mask = new_mask
        layer.apply_mask()
    return regrown


class Expander(BasePruningStep):
    """Let pruned weights inside surviving tiles grow back, then fine-tune.

    Under HE a tile costs the same whether it holds one non-zero or all of
    them, so once tile pruning has decided which tiles exist, the weights that
    unstructured pruning removed inside those tiles are free capacity. Every
    mask is set to the union of the surviving pruning units of the layout
    (units holding at least one non-zero weight); all-zero units stay masked.
    For convolutions, a kernel tap is only released if its unrolled footprint
    stays inside the currently non-zero tiles. The set of non-zero tiles
    therefore never grows.

    Parameters
    ----------
    fine_tune_iter : int or "auto", default="auto"
        Epochs of fine-tuning with the expanded masks (0: only unmask);
        ``"auto"`` as in :class:`TilePruner` (a third of the epochs the
        network was trained for, between 20 and 200).
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling of the fine-tuning; ``None`` uses the network's
        own ``random_state``.

    Attributes
    ----------
    n_regrown_ : int
        Number of weights released by the expansion.
    sparsity_, n_nonzero_tiles_, n_tiles_, tile_sparsity_, tile_shape_
        Set by every pruning step (see :meth:`prune`): weight sparsity after
        fine-tuning, and the tiles (``n_nonzero_tiles_`` is never more than
        before).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skhepex import MLPClassifier, MagnitudePruner, Expander
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=20, random_state=0)
    >>> clf = clf.fit(X / 16, y)
    >>> pruned = MagnitudePruner(fine_tune_iter=2).prune(clf, X / 16, y)
    >>> step = Expander(fine_tune_iter=2)
    >>> expanded = step.prune(pruned, X / 16, y)
    >>> step.sparsity_ < 0.8
    True
    """

    _parameter_constraints = {
        "fine_tune_iter": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "random_state": ["random_state"],
    }

    def __init__(self, fine_tune_iter="auto", random_state=None):
        self.fine_tune_iter = fine_tune_iter
        self.random_state = random_state

    def _prune(self, est, X, y, tile_shape):
        n_before = TileLayout(est, tile_shape).n_nonzero_tiles
        net = est.network_
        regrown = expand_masks(est, tile_shape)
        est.fine_tune(X, y, max_iter=fine_tune_epochs(self.fine_tune_iter, est),
                      random_state=self.random_state)
        net.apply_masks()
        n_after = TileLayout(est, tile_shape).n_nonzero_tiles
        if n_after > n_before:  # pragma: no cover - guarded by construction
            raise RuntimeError(
                f"Expander increased the non-zero tiles ({n_before} -> {n_after}).")
        self.n_regrown_ = regrown
        return est
