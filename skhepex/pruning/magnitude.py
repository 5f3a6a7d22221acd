"""Gradual unstructured magnitude pruning."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BasePruningStep, drop_lowest, sparsity_schedule

__all__ = ["MagnitudePruner"]


class MagnitudePruner(BasePruningStep):
    """Gradual unstructured magnitude pruning with masked fine-tuning.

    The smallest-magnitude weights are masked over ``n_steps`` rounds, the
    sparsity following a cubic (Zhu & Gupta, 2017) or linear schedule up to
    ``sparsity``; the network is fine-tuned for ``fine_tune_iter`` epochs
    after every round with the masks fixed. Biases are never pruned and every
    layer keeps at least one weight.

    Parameters
    ----------
    sparsity : float, default=0.8
        Final fraction of zero weights (per layer or over the whole network,
        see ``scope``).
    scope : {"layer", "global"}, default="layer"
        ``"layer"`` prunes every weight layer to ``sparsity``; ``"global"``
        ranks all weights of the network together.
    n_steps : int, default=3
        Number of pruning rounds.
    schedule : {"cubic", "linear"}, default="cubic"
        Sparsity schedule over the rounds (cubic prunes fast first).
    fine_tune_iter : int, default=10
        Epochs of masked fine-tuning after each round (0: none).
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling of the fine-tuning; ``None`` uses the network's
        own ``random_state``.

    Attributes
    ----------
    layer_sparsity_ : list of float
        Weight sparsity of every weight layer.
    sparsity_, n_nonzero_tiles_, n_tiles_, tile_sparsity_, tile_shape_
        Set by every pruning step (see :meth:`prune`): weight sparsity over
        all weight layers, and the tiles of the pruned network.

    See Also
    --------
    TilePruner : Structured pruning of whole tiles.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skhepex import MLPClassifier, MagnitudePruner
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=20, random_state=0)
    >>> clf = clf.fit(X / 16, y)
    >>> step = MagnitudePruner(sparsity=0.8, fine_tune_iter=2)
    >>> pruned = step.prune(clf, X / 16, y)
    >>> round(step.sparsity_, 2)
    0.8
    """

    _parameter_constraints = {
        "sparsity": [Interval(Real, 0, 1, closed="left")],
        "scope": [StrOptions({"layer", "global"})],
        "n_steps": [Interval(Integral, 1, None, closed="left")],
        "schedule": [StrOptions({"cubic", "linear"})],
        "fine_tune_iter": [Interval(Integral, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, sparsity=0.8, scope="layer", n_steps=3, schedule="cubic",
                 fine_tune_iter=10, random_state=None):
        self.sparsity = sparsity
        self.scope = scope
        self.n_steps = n_steps
        self.schedule = schedule
        self.fine_tune_iter = fine_tune_iter
        self.random_state = random_state

    def _prune_to(self, layers, s):
        # Masked weights rank first (key -1), then by magnitude; a stable sort
        # keeps the result deterministic.
        keys = [np.where(layer.mask, np.abs(layer.W), -1.0).ravel() for layer in layers]
        for layer, d in zip(layers, drop_lowest(keys, s, self.scope)):
            layer.mask.ravel()[d] = False
            layer.apply_mask()

    def _prune(self, est, X, y, tile_shape):
        layers = est.network_.weight_layers
        for s in sparsity_schedule(self.sparsity, self.n_steps, self.schedule):
            self._prune_to(layers, float(s))
            est.fine_tune(X, y, max_iter=self.fine_tune_iter, random_state=self.random_state)
        est.network_.apply_masks()
        self.layer_sparsity_ = [float(np.mean(layer.W == 0)) for layer in layers]
        return est
