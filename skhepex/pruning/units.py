"""Pruning units of the tile layout: their importance, HE cost and selection.

A pruning unit (``TileLayout.layers[i].weight_units``) is one tile of a dense
layer, or the block of kernels of a convolution whose unrolled rows and
columns share a tile row and a tile column. :class:`TilePruner` scores the
units (:func:`unit_scores`, :func:`taylor_scores`), prices their tile rows
(:func:`unit_rows`, :func:`he_row_costs`) and zeroes those
:func:`select_units` picks.
"""

import numpy as np
from sklearn.utils import check_random_state

from ._base import drop_lowest, keep_best, n_to_drop, split_like

__all__ = ["unit_rows", "unit_scores", "taylor_scores", "he_row_costs", "select_units",
           "floor_counts"]


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
    from ..he import he_cost_report, unit_costs  # lazy: only row_cost="auto" needs HE

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


def taylor_scores(est, layout, X, y, batch_size=64, random_state=None):
    """Data-driven importance of every pruning unit (Molchanov et al., 2019).

    For every minibatch ``b`` the first-order change of the loss when a unit
    is removed is ``sum_{w in unit} g_b(w) * w``; its square is averaged over
    the minibatches (a Fisher-style estimate, non-zero even at a minimum of
    the full-batch loss). Unlike a weight norm it sees the network's
    connectivity: a tile that is the only path to some outputs scores high.

    Parameters
    ----------
    est : estimator
        A fitted skhepex network. Its weights are not changed (its gradient
        buffers are).
    layout : TileLayout
        Tiling of ``est`` (gives the pruning units).
    X : array-like of shape (n_samples, n_features)
        Training data.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs) or None
        Training targets (``None`` for an autoencoder).
    batch_size : int, default=64
        Samples per minibatch.
    random_state : int, RandomState instance or None, default=None
        Shuffles the samples into minibatches. An int gives the same batches
        at every call; ``None`` uses the global NumPy random state.

    Returns
    -------
    scores : list of ndarray
        One array of shape (n_units,) per weight layer, in loss units.
    """
    net = est.network_
    Xp, T = est.training_targets(X, y)
    layers = net.weight_layers
    units = [lt.weight_units.ravel() for lt in layout.layers]
    acc = [np.zeros(lt.n_units) for lt in layout.layers]
    n = Xp.shape[0]
    order = check_random_state(random_state).permutation(n)
    n_batches = 0
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        out = net.forward(Xp[idx], train=True)
        _, grad = est.loss_gradient(out, T[idx])
        net.backward(grad)
        for a, u, layer in zip(acc, units, layers):
            a += np.bincount(u, (layer.gW * layer.W).ravel(), minlength=a.size) ** 2
        n_batches += 1
    net.clear_cache()
    return [a / max(n_batches, 1) for a in acc]


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


def _row_groups(scores, layout, row_costs):
    """Global row group, row-group cost and protection of every unit, per layer."""
    rows, costs, protected, offset = [], [], [], 0
    L = len(scores)
    for i, s in enumerate(scores):
        g, n_rows = unit_rows(layout, i)
        rc = n_rows * row_costs[i]
        if i == L - 1 and layout.layers[i].kind == "dense":
            rc = np.zeros_like(rc, dtype=float)   # outputs stay connected
        rows.append(g + offset)
        costs.append(np.asarray(rc, dtype=float))
        protected.append(np.zeros(s.size, dtype=bool))
        offset += len(n_rows)
    return rows, costs, protected


def _drop_by_cost(scores, layout, target, row_costs, scope):
    """Row-aware greedy selection (:func:`_greedy_drop`), per layer or global."""
    rows, costs, protected = _row_groups(scores, layout, row_costs)
    if scope == "layer":
        return [_greedy_drop(s, g - g.min(), c, n_to_drop(target, s.size), pr)
                for s, g, c, pr in zip(scores, rows, costs, protected)]
    alls = np.concatenate(scores)
    d = _greedy_drop(alls, np.concatenate(rows), np.concatenate(costs),
                     n_to_drop(target, alls.size, len(scores)), np.concatenate(protected))
    return split_like(d, scores)


def floor_counts(layout, target, layer_floor):
    """Units every layer keeps at least under a pruning target.

    Parameters
    ----------
    layout : TileLayout
        The tiling (gives the units per layer).
    target : float or None
        Target fraction of dropped units; ``None`` counts as 0.
    layer_floor : float
        Fraction of the budget's average keep rate every layer is granted.

    Returns
    -------
    counts : list of int
        ``max(1, ceil(layer_floor * (1 - target) * n_units))`` per layer.
    """
    keep = 1.0 - (target or 0.0)
    return [max(1, int(np.ceil(layer_floor * keep * lt.n_units - 1e-9)))
            for lt in layout.layers]


def _protect_top(scores, counts):
    """Scores with the ``counts[i]`` best units of every layer raised to +inf."""
    out = []
    for s, c in zip(scores, counts):
        s = np.asarray(s, dtype=float).copy()
        s[np.argsort(-s, kind="stable")[:int(c)]] = np.inf
        out.append(s)
    return out


def _connect(out, scores, layout):
    """Un-drop units so that a path of kept tiles joins input and output.

    For consecutive dense layers the tile rows of layer ``l`` are the tile
    columns of layer ``l + 1`` (the alternating orientation). A kept tile is
    *fed* when its column is a tile row of layer ``l`` holding a fed tile
    (every tile of the first layer is fed). When no kept tile of a layer is
    fed, dead-unit removal would empty the network from there on; the best
    tile reading a fed row is kept instead; in a dense last layer, every
    output tile-row gets one. ``out`` is modified in place.
    """
    fed_rows = None
    for i, lt in enumerate(layout.layers):
        if lt.kind != "dense" or (i and layout.layers[i - 1].kind != "dense"):
            fed_rows = None
            continue
        keep = ~out[i].reshape(lt.grid)
        if fed_rows is not None:
            cols = np.zeros(lt.grid[1], dtype=bool)
            cols[:fed_rows.size] = fed_rows[:lt.grid[1]]
            fed = keep & cols[None, :]
            last = i == len(layout.layers) - 1
            sc = np.where(cols[None, :], scores[i].reshape(lt.grid), -np.inf)
            # the last layer: every output tile-row; else: at least one tile
            rows = np.flatnonzero(~fed.any(axis=1)) if last else \
                ([int(np.argmax(sc.max(axis=1)))] if not fed.any() else [])
            for p in rows if cols.any() else []:
                q = int(np.argmax(sc[p]))
                out[i][p * lt.grid[1] + q] = False
                fed[p, q] = True
            keep = fed
        fed_rows = keep.any(axis=1)


def select_units(scores, layout, target, *, scope="layer", threshold=None,
                 row_costs=None, min_keep=None):
    """Which pruning units to zero, one boolean array per weight layer.

    Every layer keeps at least its best unit, when the last layer is dense
    every tile row of it keeps its best unit (no output is disconnected),
    and through consecutive dense layers at least one path of kept tiles
    joins the input to the output (so that dead-unit removal never empties a
    layer).

    Parameters
    ----------
    scores : list of ndarray
        Importance of every unit, one array of shape (n_units,) per weight
        layer, comparable across layers (e.g. :func:`unit_scores`).
    layout : TileLayout
        The tiling the units belong to.
    target : float or None
        Target fraction of zero units (already-zero units count), per layer
        or over all units; ignored when ``threshold`` is given.
    scope : {"layer", "global"}, default="layer"
        Rank units within each layer or over the whole network.
    threshold : float, default=None
        If given, drop every unit scoring below it instead.
    row_costs : list of float, default=None
        Cost of one live output tile-row per layer, in tiles. When any is
        non-zero (and ``threshold`` is None) units are dropped greedily by
        score per unit of HE cost (:func:`_greedy_drop`), which empties
        whole tile-rows first; otherwise by score alone.
    min_keep : list of int, default=None
        Units every layer keeps at least (its best ones, e.g.
        :func:`floor_counts`); ``None`` keeps at least one.

    Returns
    -------
    drops : list of ndarray of bool
        One array of shape (n_units,) per weight layer, True for the units
        to zero.
    """
    if min_keep is not None:
        scores = _protect_top(scores, min_keep)
    if row_costs is not None and threshold is None and any(row_costs):
        drops = _drop_by_cost(scores, layout, target, row_costs, scope)
    elif threshold is not None:
        drops = [s < threshold for s in scores]
    else:
        drops = drop_lowest(scores, target, scope)
    # the floor is never dropped, even when the target asks for more
    out = [keep_best(d & ~np.isposinf(s), s).copy() for s, d in zip(scores, drops)]
    last = layout.layers[-1]
    if last.kind == "dense":
        # never disconnect an output: keep the best unit of every tile row
        rows = out[-1].reshape(last.grid)
        sc = scores[-1].reshape(last.grid)
        for p in np.flatnonzero(rows.all(axis=1)):
            rows[p, np.argmax(sc[p])] = False
    _connect(out, scores, layout)
    return out
