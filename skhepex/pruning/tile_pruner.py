"""Structured pruning of whole tiles (pruning units of the tiling layout)."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ..tiling import TileLayout
from ._base import BasePruningStep, remove_dead_units
from .expander import expand_masks

__all__ = ["TilePruner", "unit_scores", "taylor_scores", "unit_rows", "he_row_costs"]


def unit_rows(layout, index):
    """Output tile-row group of every pruning unit of one layer.

    Parameters
    ----------
    layout : TileLayout
        The tiling.
    index : int
        Weight-layer index.

    Returns
    -------
    groups : ndarray of int of shape (n_units,)
        Units sharing a group all read into the same output tile-rows of the
        layer (``block_shape[0]`` rows of its (out, in) matrix): emptying all
        of them leaves those tile-rows without a live tile, so the HE engine
        computes them as compile-time constants (no rotation, no activation)
        and the next layer folds them into its bias.
    n_rows : ndarray of int
        Tile-rows spanned by each group.
    """
    lt = layout.layers[index]
    if lt.kind == "dense":
        groups = np.arange(lt.n_units) // lt.grid[1]
        return groups, np.ones(lt.grid[0], dtype=int)
    units = lt.weight_units
    n_ig = int(units[0].max()) + 1 if units.shape[0] else 1
    groups = np.arange(lt.n_units) // n_ig
    n_groups = int(groups.max()) + 1
    # output channels of every group -> tile rows they cover
    og = units[:, 0, 0, 0] // n_ig
    r = lt.block_shape[0]
    n_rows = np.zeros(n_groups, dtype=int)
    for g in range(n_groups):
        ch = np.flatnonzero(og == g)
        lo, hi = ch.min() * lt.out_unit_size, (ch.max() + 1) * lt.out_unit_size
        n_rows[g] = (hi - 1) // r - lo // r + 1
    return groups, n_rows


def he_row_costs(estimator, tile_shape, params="auto"):
    """Cost of one live output tile-row per layer, in ciphertext-plaintext multiplies.

    Uses the key-free cost model (:func:`skhepex.he.he_cost_report` with
    unit costs measured once per process): for every layer the predicted
    time not spent in its ct x pt multiplies (rotations, masks,
    replication, activation, rescaling) divided by its live output
    tile-rows and by the time of one ct x pt multiply.

    Parameters
    ----------
    estimator : estimator
        A fitted skhepex network.
    tile_shape : tuple of int
        Tile shape.
    params : CKKSParams, dict or "auto", default="auto"
        CKKS parameters of the report.

    Returns
    -------
    costs : list of float
        One per weight layer (0 for a layer without live rows).
    """
    from ..he.report import he_cost_report, unit_costs

    rep = he_cost_report(estimator, tile_shape=tuple(tile_shape), params=params,
                         measure=True)
    mul = unit_costs(rep.params)["mul_plain"]
    t_mul = float(np.mean(list(mul.values())))
    costs = []
    for rec in rep.layers:
        rows = rec.get("n_live_rows", 0)
        if not rows or t_mul <= 0:
            costs.append(0.0)
            continue
        extra = rec["predicted_seconds"] - rec["mul_plain"] * t_mul
        costs.append(max(float(extra / (rows * t_mul)), 0.0))
    return costs


def _greedy_drop(scores, rows, row_cost, k, protected):
    """Drop ``k`` units with the lowest score per unit of HE cost.

    A unit's cost is one tile plus its share of its tile-row's cost (the row
    cost divided by the live units left in the row), so once a row is
    thinned its last units become cheap to remove and whole rows empty.

    Parameters
    ----------
    scores : ndarray of shape (n,)
        Importance of every unit (0 for already-empty units).
    rows : ndarray of int of shape (n,)
        Global row-group index of every unit.
    row_cost : ndarray of shape (n_groups,)
        Cost of each row group when live, in tiles.
    k : int
        Units to drop (empty units count).
    protected : ndarray of bool of shape (n,)
        Units that may not be dropped.

    Returns
    -------
    drop : ndarray of bool of shape (n,)
    """
    n = scores.size
    drop = scores <= 0
    drop &= ~protected
    live = np.bincount(rows, ~drop, minlength=row_cost.size).astype(float)
    k = min(k, n - int(protected.sum()))
    while drop.sum() < k:
        cand = ~drop & ~protected
        if not cand.any():
            break
        share = row_cost[rows] / np.maximum(live[rows], 1.0)
        ratio = np.where(cand, scores / (1.0 + share), np.inf)
        u = int(np.argmin(ratio))
        drop[u] = True
        live[rows[u]] -= 1
    return drop


def taylor_scores(est, layout, X, y, batch_size=64):
    """Data-driven importance of every pruning unit (Molchanov et al., 2019).

    For every minibatch ``b`` the first-order change of the loss when a unit
    is removed is ``sum_{w in unit} g_b(w) * w``; its square is averaged over
    the minibatches (a Fisher-style estimate, non-zero even at a minimum of
    the full-batch loss). Unlike a weight norm it sees the network's
    connectivity: a tile that is the only path to some outputs scores high.

    Returns
    -------
    scores : list of ndarray
        One array of shape (n_units,) per weight layer, in loss units.
    """
    net = est.network_
    Xp, T = est._prepare_fine_tune(X, y)
    layers = net.weight_layers
    units = [lt.weight_units.ravel() for lt in layout.layers]
    acc = [np.zeros(lt.n_units) for lt in layout.layers]
    n = Xp.shape[0]
    order = np.random.RandomState(0).permutation(n)
    n_batches = 0
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        out = net.forward(Xp[idx], train=True)
        _, grad = est._loss(out, T[idx])
        net.backward(grad)
        for a, u, layer in zip(acc, units, layers):
            a += np.bincount(u, (layer.gW * layer.W).ravel(), minlength=a.size) ** 2
        n_batches += 1
    net.clear_cache()
    return [a / max(n_batches, 1) for a in acc]


def unit_scores(layout, index, W, criterion="l2"):
    """Size-normalised norm of every pruning unit of one layer.

    Parameters
    ----------
    layout : TileLayout
        The tiling (gives ``weight_units``).
    index : int
        Weight-layer index.
    W : ndarray
        The layer's weight tensor.
    criterion : {"l2", "l1", "max"}, default="l2"
        ``"l2"``: root mean square of the unit's weights; ``"l1"``: mean
        absolute value; ``"max"``: largest absolute value.

    Returns
    -------
    scores : ndarray of shape (n_units,)
        Unit scores divided by their mean over the layer's non-empty units
        (so 1 is an average unit whatever the layer's scale).
    """
    lt = layout.layers[index]
    units = lt.weight_units.ravel()
    w = np.abs(W).ravel()
    size = np.bincount(units, minlength=lt.n_units).astype(float)
    size[size == 0] = 1.0
    if criterion == "l2":
        s = np.sqrt(np.bincount(units, w * w, minlength=lt.n_units) / size)
    elif criterion == "l1":
        s = np.bincount(units, w, minlength=lt.n_units) / size
    else:
        s = np.zeros(lt.n_units)
        np.maximum.at(s, units, w)
    alive = s > 0
    mean = s[alive].mean() if alive.any() else 1.0
    return s / mean


def _reconnect_outputs(est, layout):
    """Give every tile row of a dense output layer at least one trainable tile.

    Dead-unit removal may empty a tile row of the output layer (its tiles only
    read hidden units that lost their inputs), which would disconnect those
    outputs for good. Such a row gets back (all-zero, trainable) the tile of
    the column group with the most live inputs.
    """
    layers = est.network_.weight_layers
    last, lt = layers[-1], layout.layers[-1]
    if last.kind != "dense" or len(layers) < 2:
        return
    units = lt.weight_units
    alive = np.bincount(units.ravel(), last.mask.ravel(), minlength=lt.n_units) > 0
    alive = alive.reshape(lt.grid)
    if alive.any(axis=1).all():
        return
    prev = layers[-2]
    if prev.kind == "dense":
        live_in = (prev.W != 0).any(axis=0)
    else:
        ch = (prev.W != 0).reshape(prev.W.shape[0], -1).any(axis=1)
        live_in = np.repeat(ch, last.W.shape[0] // len(ch))
    c = lt.block_shape[1]
    counts = np.array([live_in[q * c:(q + 1) * c].sum() for q in range(lt.grid[1])])
    q = int(np.argmax(counts))
    for p in np.flatnonzero(~alive.any(axis=1)):
        last.mask[units == p * lt.grid[1] + q] = True


class TilePruner(BasePruningStep):
    """Zero whole tiles (pruning units) with the lowest norm, then fine-tune.

    The pruning units come from :class:`~skhepex.tiling.TileLayout`
    (``weight_units``): for a dense layer a unit is exactly one tile of the
    layer's orientation; for a convolution it is the block of kernels whose
    unrolled rows and columns share a tile row and a tile column. Units are
    ranked by a size-normalised norm (see ``criterion``), divided by the
    layer's mean, so that units of different layers are comparable in
    ``scope="global"``. Already-zero units count towards the target. Every
    layer keeps at least one unit. After pruning, the network is fine-tuned
    with the masks fixed. Applied alone to a dense network this is the
    Hunter-style structured-pruning baseline.

    Parameters
    ----------
    tile_sparsity : float, default=0.5
        Target fraction of zero units, per layer (``scope="layer"``) or over
        all units of the network (``scope="global"``). Ignored when
        ``threshold`` is given.
    criterion : {"l2", "l1", "max", "taylor"}, default="l2"
        Unit importance: root mean square, mean absolute value or maximum
        absolute value of its weights, or ``"taylor"``: the data-driven
        first-order estimate of the loss increase when the unit is removed
        (see :func:`taylor_scores`; comparable across layers as is).
    scope : {"layer", "global"}, default="layer"
        Rank units within each layer or over the whole network.
    threshold : float, default=None
        If given, prune every unit whose relative score (unit score divided by
        the mean score of its layer) is below ``threshold`` instead of using
        ``tile_sparsity``.
    n_steps : int, default=3
        Prune gradually over ``n_steps`` rounds (cubic schedule up to
        ``tile_sparsity``), fine-tuning after each; 1 prunes at once. Ignored
        with ``threshold`` (one round).
    regrow : bool, default=False
        After each round, release every weight inside the surviving units (as
        :class:`Expander` does) before fine-tuning, so that later rounds rank
        tiles of a recovered network instead of a crippled sparse one. The
        first round still ranks the tiles of the input (e.g. magnitude-pruned
        and permuted) network. No effect on a dense network.
    fine_tune_iter : int, default=10
        Epochs of masked fine-tuning after each round (0: none).
    row_cost : float, list of float or "auto", default=0.0
        HE cost of one live output tile-row of a layer, in tiles (ct x pt
        multiplies): under HE every output tile-row with a live tile costs
        rotations (and the activation of its chunk) on top of its tiles, and
        a row without live tiles costs nothing. With ``row_cost > 0`` units
        are ranked by importance per unit of HE cost -- score divided by one
        tile plus the unit's share of its row's cost -- and removed greedily,
        so thinned rows are emptied first (:func:`_greedy_drop`). A list
        gives one cost per weight layer; ``"auto"`` measures them with the
        key-free cost model (:func:`he_row_costs`). The output rows of a
        dense last layer are never emptied. ``0`` ranks by score alone.
        Needs ``threshold=None``.

    Attributes
    ----------
    row_costs_ : list of float
        Cost of a live output tile-row per layer, in tiles, as used.
    unit_sparsity_ : list of float
        Fraction of zero pruning units of every weight layer after pruning.
    n_units_ : list of int
        Pruning units of every weight layer.
    sparsity_ : float
        Weight sparsity of the pruned network.
    n_nonzero_tiles_ : int
        Non-zero weight tiles after pruning.
    n_tiles_ : int
        Weight tiles of the layout.
    tile_sparsity_ : float
        Fraction of all-zero tiles.
    tile_shape_ : tuple
        Tile shape used by the last :meth:`prune`.

    See Also
    --------
    Expander : Lets pruned weights inside surviving tiles grow back.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skhepex import MLPClassifier, TilePruner
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=20, random_state=0)
    >>> clf = clf.fit(X / 16, y)
    >>> step = TilePruner(tile_sparsity=0.5, fine_tune_iter=2)
    >>> pruned = step.prune(clf, X / 16, y, tile_shape=(8, 8))
    >>> step.unit_sparsity_[0] >= 0.5
    True
    >>> step.n_nonzero_tiles_ < 40
    True
    """

    _parameter_constraints = {
        "tile_sparsity": [Interval(Real, 0, 1, closed="left")],
        "criterion": [StrOptions({"l2", "l1", "max", "taylor"})],
        "scope": [StrOptions({"layer", "global"})],
        "threshold": [None, Interval(Real, 0, None, closed="left")],
        "n_steps": [Interval(Integral, 1, None, closed="left")],
        "regrow": ["boolean"],
        "fine_tune_iter": [Interval(Integral, 0, None, closed="left")],
        "row_cost": [Interval(Real, 0, None, closed="left"), list, tuple,
                     StrOptions({"auto"})],
    }

    def __init__(self, tile_sparsity=0.5, criterion="l2", scope="layer", threshold=None,
                 n_steps=3, regrow=False, fine_tune_iter=10, row_cost=0.0):
        self.tile_sparsity = tile_sparsity
        self.criterion = criterion
        self.scope = scope
        self.threshold = threshold
        self.n_steps = n_steps
        self.regrow = regrow
        self.fine_tune_iter = fine_tune_iter
        self.row_cost = row_cost

    def _row_costs(self, est, tile_shape, n_layers):
        rc = self.row_cost
        if isinstance(rc, str):
            return he_row_costs(est, tile_shape)
        if isinstance(rc, (list, tuple)):
            if len(rc) != n_layers:
                raise ValueError(f"row_cost has {len(rc)} entries; the network has "
                                 f"{n_layers} weight layers.")
            return [float(v) for v in rc]
        return [float(rc)] * n_layers

    def _select_rows(self, scores, layout, target, row_costs):
        """Row-aware greedy selection (``row_cost`` given)."""
        rows, costs, protected, offset = [], [], [], 0
        L = len(scores)
        for i, s in enumerate(scores):
            g, n_rows = unit_rows(layout, i)
            rc = n_rows * row_costs[i]
            lt = layout.layers[i]
            prot = np.zeros(s.size, dtype=bool)
            if i == L - 1 and lt.kind == "dense":
                rc = np.zeros_like(rc, dtype=float)   # outputs stay connected
            rows.append(g + offset)
            costs.append(np.asarray(rc, dtype=float))
            protected.append(prot)
            offset += len(n_rows)
        if self.scope == "layer":
            drops = []
            for s, g, c, pr in zip(scores, rows, costs, protected):
                k = min(int(round(target * s.size)), s.size - 1)
                drops.append(_greedy_drop(s, g - g.min(), c, k, pr))
            return drops
        alls = np.concatenate(scores)
        k = min(int(round(target * alls.size)), alls.size - len(scores))
        d = _greedy_drop(alls, np.concatenate(rows), np.concatenate(costs), k,
                         np.concatenate(protected))
        drops, start = [], 0
        for s in scores:
            drops.append(d[start:start + s.size])
            start += s.size
        return drops

    def _select(self, scores, layout, target, row_costs=None):
        """Boolean arrays of the units to prune, one per layer."""
        if row_costs is not None and self.threshold is None and any(row_costs):
            drops = self._select_rows(scores, layout, target, row_costs)
        elif self.threshold is not None:
            drops = [s < self.threshold for s in scores]
        elif self.scope == "layer":
            drops = []
            for s in scores:
                k = min(int(round(target * s.size)), s.size - 1)
                d = np.zeros(s.size, dtype=bool)
                d[np.argsort(s, kind="stable")[:k]] = True
                drops.append(d)
        elif self.scope == "global":
            alls = np.concatenate(scores)
            k = min(int(round(target * alls.size)), alls.size - len(scores))
            # zero units first, then by relative score
            d = np.zeros(alls.size, dtype=bool)
            d[np.argsort(alls, kind="stable")[:k]] = True
            drops, start = [], 0
            for s in scores:
                drops.append(d[start:start + s.size])
                start += s.size
        out = []
        for s, d in zip(scores, drops):
            d = d.copy()
            if d.all():  # never empty a layer: keep its best unit
                d[np.argmax(s)] = False
            out.append(d)
        last = layout.layers[-1]
        if last.kind == "dense":
            # never disconnect an output: keep the best unit of every tile row
            rows = out[-1].reshape(last.grid)
            sc = scores[-1].reshape(last.grid)
            for p in np.flatnonzero(rows.all(axis=1)):
                rows[p, np.argmax(sc[p])] = False
        return out

    def _prune(self, est, X, y, tile_shape):
        layers = est.network_.weight_layers
        if self.threshold is not None:
            targets = [None]
        else:
            fr = np.arange(1, self.n_steps + 1) / self.n_steps
            targets = self.tile_sparsity * (1.0 - (1.0 - fr) ** 3)
        row_costs = self._row_costs(est, tile_shape, len(layers))
        self.row_costs_ = row_costs
        for target in targets:
            layout = TileLayout(est, tile_shape)
            if self.criterion == "taylor":
                raw = taylor_scores(est, layout, X, y)
                alive = np.concatenate(raw)
                mean = alive[alive > 0].mean() if np.any(alive > 0) else 1.0
                scores = [r / mean for r in raw]
            else:
                scores = [unit_scores(layout, i, layer.W, self.criterion)
                          for i, layer in enumerate(layers)]
            drops = self._select(scores, layout, target, row_costs)
            for i, (layer, d) in enumerate(zip(layers, drops)):
                units = layout.layers[i].weight_units
                layer.mask &= ~d[units]
                layer.apply_mask()
            remove_dead_units(est)
            _reconnect_outputs(est, layout)
            if self.regrow:
                expand_masks(est, tile_shape)
            est._fine_tune(X, y, self.fine_tune_iter)
            est.network_.apply_masks()
            remove_dead_units(est)
        layout = TileLayout(est, tile_shape)
        self.n_units_ = [lt.n_units for lt in layout.layers]
        self.unit_sparsity_ = []
        for i, layer in enumerate(layers):
            lt = layout.layers[i]
            nz = np.bincount(lt.weight_units.ravel(), (layer.W != 0).ravel(),
                             minlength=lt.n_units)
            self.unit_sparsity_.append(float(np.mean(nz == 0)))
        return est
