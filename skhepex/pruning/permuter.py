"""Function-preserving neuron permutations that gather weights into few tiles."""

from numbers import Integral, Real

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from ..tiling import TileLayout
from ._base import BasePruningStep, block_l21
from .budget import (apply_permutation, budget_permutation, importance_matrices,
                     unit_tile_mass)

__all__ = ["Permuter", "live_rows"]

#: Feature value marking a live unit (has incoming weights) in the clustering:
#: positive, so it counts as an opened column, and negligible as mass.
_LIVE_MARK = 1e-30


def live_rows(layout):
    """Output tile-rows holding at least one non-zero tile, summed over layers.

    Under HE every live output tile-row costs rotations and its chunk's
    activation; a row without live tiles is a compile-time constant.

    Parameters
    ----------
    layout : TileLayout
        The tiling.

    Returns
    -------
    n_rows : int
        Number of live output tile-rows over all weight layers.
    """
    return int(sum(int(lt.tile_mask.any(axis=1).sum()) for lt in layout.layers))


def _objective(layout):
    """(non-zero tiles, live tile-rows, block L2,1 concentration): lower is better."""
    return layout.n_nonzero_tiles, live_rows(layout), block_l21(layout)


def _better(new, old):
    if new[:2] != old[:2]:
        return new[:2] < old[:2]
    return new[2] < old[2] - 1e-9 * max(1.0, abs(old[2]))


def _unit_features(layout, index, unit_size, axis):
    """Squared mass of each output (``axis=0``) or input unit of a layer per tile
    column (resp. row), divided by the layer's squared norm."""
    M = layout.matrices()[index][0]
    M2 = M * M
    fro = M2.sum()
    F = unit_tile_mass(M2, unit_size, layout.layers[index].block_shape, axis)
    return F / fro if fro > 0 else F


def _group_cost(F, assign, n_groups, weights=None):
    """Exact surrogate objective of an assignment: (weighted tiles, sum sqrt mass)."""
    M = np.zeros((n_groups, F.shape[1]))
    np.add.at(M, assign, F)
    w = np.ones(F.shape[1]) if weights is None else weights
    return float(((M > 0) * w).sum()), float(np.sqrt(M).sum())


def balanced_clustering(F, group_size, rng, n_init=4, max_inner=30, weights=None):
    """Assign units to groups of exactly ``group_size`` members.

    Balanced k-means on tile-occupancy features: ``F[u, j]`` is the squared
    weight mass unit ``u`` puts in tile ``j`` (of either adjacent matrix).
    The cost of placing ``u`` in group ``k`` is the number of tiles it would
    open there (tiles the rest of the group leaves empty) plus the increase of
    the group's sum of tile norms, ``sum_j sqrt(M_kj + F_uj) - sqrt(M_kj)``
    (concave: gathering mass in already-heavy tiles is cheap). The balanced
    assignment is solved exactly with ``linear_sum_assignment`` on the
    units x slots cost matrix; centroids are recomputed until the assignment
    is stable. Several starts (the current order first) are tried.
    ``weights`` (one per column of ``F``, default 1) prices opening each
    column; a column that only marks a unit as live (a tiny positive value)
    with weight ``w`` makes a group pay ``w`` once if any member is live, so
    dead units gather into groups of their own (tile-rows the HE engine
    skips).

    Parameters
    ----------
    F : ndarray of shape (n_units, n_columns)
        Non-negative features: squared weight mass of every unit per tile.
    group_size : int
        Members per group (the last group takes the remainder).
    rng : RandomState
        Draws the random starts.
    n_init : int, default=4
        Starts: the current order, then ``n_init - 1`` random assignments.
    max_inner : int, default=30
        Most assignment/centroid rounds per start.
    weights : ndarray of shape (n_columns,), default=None
        Price of opening each column of ``F`` (1 when ``None``).

    Returns
    -------
    perm : ndarray of int
        New order of the units (group 0's members first).
    """
    n, _ = F.shape
    n_groups = -(-n // group_size)
    caps = [group_size] * (n_groups - 1) + [n - group_size * (n_groups - 1)]
    slot_group = np.repeat(np.arange(n_groups), caps)
    has = F > 0
    w = np.ones(F.shape[1]) if weights is None else np.asarray(weights, dtype=float)
    # scale of the mass term: a typical unit's own sum of tile norms
    scale = np.mean(np.sqrt(F).sum(axis=1))
    scale = scale if scale > 0 else 1.0
    best, best_assign = None, None
    starts = [slot_group.copy()] + [rng.permutation(slot_group) for _ in range(n_init - 1)]
    for assign in starts:
        for _ in range(max_inner):
            M = np.zeros((n_groups, F.shape[1]))
            np.add.at(M, assign, F)
            own = (assign[:, None] == np.arange(n_groups)[None, :])[:, :, None]
            others = np.maximum(M[None, :, :] - F[:, None, :] * own, 0.0)
            opened = (has[:, None, :] & (others <= 0)) @ w
            mass = (np.sqrt(others + F[:, None, :]) - np.sqrt(others)).sum(axis=2)
            cost = opened + mass / scale
            _, cols = linear_sum_assignment(cost[:, slot_group])
            new = slot_group[cols]
            if np.array_equal(new, assign):
                break
            assign = new
        val = _group_cost(F, assign, n_groups, w)
        if best is None or val < best:
            best, best_assign = val, assign
    return np.argsort(best_assign, kind="stable")


def _compact_dead(live, perm, group_size):
    """Reorder ``perm`` so that units without incoming weights fill whole groups.

    Groups of ``perm`` are kept in order of decreasing live members, and
    within that order the dead units are moved to the end: the live units
    stay as grouped as possible while the trailing groups become all-dead
    (tile-rows the HE engine does not compute).
    """
    n = len(perm)
    groups = [perm[i:i + group_size] for i in range(0, n, group_size)]
    groups.sort(key=lambda m: -int(live[m].sum()))
    order = np.concatenate(groups)
    return np.concatenate([order[live[order]], order[~live[order]]])


class Permuter(BasePruningStep):
    """Permute hidden neurons so that surviving weights gather into few tiles.

    For every hidden interface ``l`` (between weight layers ``l`` and
    ``l + 1``) one permutation reorders the output units of layer ``l``
    (neurons, or channels of a convolution) -- rows of ``W_l`` and ``b_l``
    -- and the matching input units of layer ``l + 1``, so the network
    computes exactly the same function. The units are clustered into groups
    that exactly fill a tile row (``block rows / unit size`` units; an
    interface whose unit already spans a whole tile is left alone) by
    balanced k-means on their tile-occupancy in both adjacent matrices
    (see :func:`balanced_clustering`), solved with
    :func:`scipy.optimize.linear_sum_assignment`. Interfaces are revisited
    until no permutation improves. A permutation is accepted only if it
    lowers the number of non-zero tiles of the
    :class:`~skhepex.tiling.TileLayout`, or keeps it and concentrates the
    weight mass (lower sum of tile norms per layer norm); it never increases
    the non-zero tiles.

    ``predict``, ``predict_proba``, ``score`` and an autoencoder's
    ``inverse_transform(transform(X))`` are unchanged; ``transform`` returns
    the same hidden features in the permuted order (``permutations_``).

    Parameters
    ----------
    max_iter : int, default=10
        Maximum sweeps over the interfaces.
    permute_inputs : bool, default=False
        Also permute the input features (columns of the first, dense, layer).
        The network applies the permutation to its input itself (client-side
        plaintext under HE), so ``predict`` is unchanged.
    permute_outputs : bool, default=False
        Also permute the outputs (rows of the last, dense, layer); undone by
        the network after its last layer.
    n_init : int, default=4
        Starts of the balanced clustering per interface (the current order
        and ``n_init - 1`` random ones).
    random_state : int, RandomState instance or None, default=None
        Seeds the random starts.
    row_weight : float, default=1.0
        Price, in tiles, that the clustering puts on a live output tile-row
        of the layer before each hidden interface (a group holding at least
        one unit with incoming weights). Units without incoming weights
        (constants after pruning) then gather into whole groups, i.e.
        tile-rows the HE engine skips (no rotation, no activation). The
        acceptance rule is unchanged by it: non-zero tiles first, then live
        tile-rows (:func:`live_rows`), then concentration. ``0`` ignores
        rows in the clustering.
    tile_sparsity : float or None, default=None
        If given, the budget of a following :class:`TilePruner` (fraction of
        tiles dropped): the permutation then maximises the importance kept in
        the tiles that budget allows, chosen jointly with them
        (:func:`~skhepex.pruning.budget.budget_permutation`), instead of the
        non-zero-tile objective described above.
    criterion : {"taylor", "magnitude"}, default="taylor"
        Importance of that objective: per-weight Taylor (Fisher) estimate on
        the training data, or squared magnitude.
    scope : {"global", "layer"}, default="global"
        That budget is over the network or per layer.

    Attributes
    ----------
    permutations_ : dict
        Composed permutation of every permuted interface: key ``l`` for the
        hidden interface after weight layer ``l``, ``"input"``, ``"output"``.
    n_iter_ : int
        Sweeps run.
    n_nonzero_tiles_before_ : int
        Non-zero tiles of the input network.
    n_nonzero_tiles_ : int
        Non-zero tiles after permutation (never more than before).
    n_live_rows_before_, n_live_rows_ : int
        Live output tile-rows over all layers, before and after.
    kept_importance_before_, kept_importance_ : float
        With ``tile_sparsity``: the importance inside the kept tiles without
        and with the permutation (see ``budget_permutation``).
    concentration_before_, concentration_ : float
        Sum over layers of (sum of tile norms) / (layer norm), before and
        after; lower means the mass sits in fewer tiles.
    sparsity_ : float
        Weight sparsity (unchanged by permutation).
    n_tiles_ : int
        Weight tiles of the layout.
    tile_sparsity_ : float
        Fraction of all-zero tiles.
    tile_shape_ : tuple
        Tile shape used by the last :meth:`prune`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from skhepex import MLPClassifier, MagnitudePruner, Permuter
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=20, random_state=0)
    >>> clf = clf.fit(X / 16, y)
    >>> pruned = MagnitudePruner(sparsity=0.9, fine_tune_iter=2).prune(clf, X / 16, y)
    >>> perm = Permuter(random_state=0)
    >>> permuted = perm.prune(pruned, X / 16, y, tile_shape=(8, 8))
    >>> np.allclose(permuted.predict_proba(X / 16), pruned.predict_proba(X / 16))
    True
    >>> perm.n_nonzero_tiles_ <= perm.n_nonzero_tiles_before_
    True
    """

    _parameter_constraints = {
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "permute_inputs": ["boolean"],
        "permute_outputs": ["boolean"],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "row_weight": [Interval(Real, 0, None, closed="left")],
        "tile_sparsity": [None, Interval(Real, 0, 1, closed="left")],
        "criterion": [StrOptions({"taylor", "magnitude"})],
        "scope": [StrOptions({"global", "layer"})],
    }

    def __init__(self, max_iter=10, permute_inputs=False, permute_outputs=False, n_init=4,
                 random_state=None, row_weight=1.0, tile_sparsity=None, criterion="taylor",
                 scope="global"):
        self.max_iter = max_iter
        self.permute_inputs = permute_inputs
        self.permute_outputs = permute_outputs
        self.n_init = n_init
        self.random_state = random_state
        self.row_weight = row_weight
        self.tile_sparsity = tile_sparsity
        self.criterion = criterion
        self.scope = scope

    # ---------------------------------------------------------------- pieces
    @staticmethod
    def _interface(layout, key, row_weight=1.0):
        """Features and group size of an interface, or None to skip it."""
        L = len(layout.layers)
        if key == "input":
            B = layout.layers[0]
            g = B.block_shape[1] // B.in_unit_size
            if B.kind != "dense" or g < 2:
                return None
            return _unit_features(layout, 0, 1, 1), g, None
        if key == "output":
            A = layout.layers[L - 1]
            g = A.block_shape[0] // A.out_unit_size
            if A.kind != "dense" or g < 2:
                return None
            return _unit_features(layout, L - 1, 1, 0), g, None
        A, B = layout.layers[key], layout.layers[key + 1]
        su, sv = A.out_unit_size, B.in_unit_size
        if su >= A.block_shape[0] or sv >= B.block_shape[1]:
            return None
        g = A.block_shape[0] // su
        if g < 2:
            return None
        R = _unit_features(layout, key, su, 0)
        C = _unit_features(layout, key + 1, sv, 1)
        live = (R.sum(axis=1) > 0).astype(float)[:, None] * _LIVE_MARK
        F = np.hstack([R, C, live])
        w = np.ones(F.shape[1])
        w[-1] = row_weight
        return F, g, w

    _apply = staticmethod(apply_permutation)

    def _budget(self, est, layout, X, y, rng):
        imps = importance_matrices(est, layout, X, y, self.criterion, random_state=rng)
        self.permutations_, self.kept_importance_before_, self.kept_importance_ = \
            budget_permutation(est, layout, imps, self.tile_sparsity, scope=self.scope,
                               permute_inputs=self.permute_inputs,
                               permute_outputs=self.permute_outputs,
                               max_iter=self.max_iter, n_init=self.n_init,
                               random_state=rng)
        after = _objective(TileLayout(est, layout.tile_shape))
        self.n_iter_ = 1
        self.n_live_rows_, self.concentration_ = after[1], after[2]
        return est

    def _prune(self, est, X, y, tile_shape):
        rng = check_random_state(self.random_state)
        net = est.network_
        L = len(net.weight_layers)
        if self.permute_inputs and net.weight_layers[0].kind != "dense":
            raise ValueError("permute_inputs=True needs a dense first layer; the first "
                             "layer of this network is a convolution.")
        if self.permute_outputs and net.weight_layers[-1].kind != "dense":
            raise ValueError("permute_outputs=True needs a dense last layer.")
        keys = (["input"] if self.permute_inputs else []) + list(range(L - 1)) + \
               (["output"] if self.permute_outputs else [])
        before = _objective(TileLayout(est, tile_shape))
        self.n_nonzero_tiles_before_ = before[0]
        self.n_live_rows_before_ = before[1]
        self.concentration_before_ = before[2]
        layout = TileLayout(est, tile_shape)
        current = before
        self.permutations_ = {}
        self.n_iter_ = 0
        if self.tile_sparsity is not None:
            return self._budget(est, layout, X, y, rng)
        for _ in range(self.max_iter):
            self.n_iter_ += 1
            improved = False
            for key in keys:
                spec = self._interface(layout, key, self.row_weight)
                if spec is None:
                    continue
                F, g, w = spec
                cands = [balanced_clustering(F, g, rng, n_init=self.n_init, weights=w)]
                if w is not None and self.row_weight > 0:
                    cands.append(_compact_dead(F[:, -1] > 0, cands[0], g))
                for perm in cands:
                    if np.array_equal(perm, np.arange(len(perm))):
                        continue
                    self._apply(net, key, perm)
                    trial = TileLayout(est, tile_shape)
                    value = _objective(trial)
                    if _better(value, current):
                        current, layout, improved = value, trial, True
                        prev = self.permutations_.get(key, np.arange(len(perm)))
                        self.permutations_[key] = prev[perm]
                        break
                    self._apply(net, key, np.argsort(perm))   # undo exactly
            if not improved:
                break
        self.n_live_rows_ = current[1]
        self.concentration_ = current[2]
        return est
