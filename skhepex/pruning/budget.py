"""Budget-aware permutation: keep the most importance inside the tiles a budget allows.

Tile pruning to a budget of ``k`` tiles keeps the ``k`` most important tiles;
which weights share a tile depends on the order of the hidden units. This
module chooses that order and the kept tiles *jointly*: for a fixed set of
kept tiles, placing the units of one hidden interface is a balanced linear
assignment (every unit's gain in a group is the importance it would put in
kept tiles of both adjacent matrices); for a fixed order, the best tiles are
the ``k`` heaviest. Alternating the two never lowers the importance kept
(coordinate ascent), and starting from the current order it never keeps less
than no permutation would.
"""

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.utils import check_random_state

from ._base import n_to_drop

__all__ = ["importance_matrices", "tile_mass", "unit_tile_mass", "keep_tiles",
           "apply_permutation", "budget_permutation"]


def _dense_fisher(est, X, y, batch_size=64, random_state=None):
    """Per-weight ``mean_b (g_b * w)^2`` of every weight layer (weight-tensor shape)."""
    net = est.network_
    Xp, T = est.training_targets(X, y)
    layers = net.weight_layers
    acc = [np.zeros_like(layer.W) for layer in layers]
    order = check_random_state(random_state).permutation(Xp.shape[0])
    n_batches = 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        out = net.forward(Xp[idx], train=True)
        _, grad = est.loss_gradient(out, T[idx])
        net.backward(grad)
        for a, layer in zip(acc, layers):
            a += (layer.gW * layer.W) ** 2
        n_batches += 1
    net.clear_cache()
    return [a / max(n_batches, 1) for a in acc]


def importance_matrices(est, layout, X=None, y=None, criterion="magnitude",
                        random_state=None):
    """Additive importance of every entry of every layer's (out, in) matrix.

    Parameters
    ----------
    est : estimator
        A fitted skhepex network (its weights are not changed).
    layout : TileLayout
        Its tiling (gives the matrices the HE engine multiplies).
    X : array-like of shape (n_samples, n_features), default=None
        Training data; needed by ``criterion="taylor"``.
    y : array-like, default=None
        Training targets.
    criterion : {"magnitude", "taylor"}, default="magnitude"
        ``"magnitude"``: the squared matrix entry. ``"taylor"``: the
        per-weight Fisher estimate ``mean_b (g_b w)^2`` over minibatches (the
        first-order loss change of removing the weight); for a convolution
        the squared entries of every kernel block are rescaled so that the
        block sums to its kernel's Fisher mass.
    random_state : int, RandomState instance or None, default=None
        Shuffles the minibatches of ``"taylor"``.

    Returns
    -------
    imps : list of ndarray
        One non-negative array per layer, of the layer's ``matrix_shape``;
        permuting hidden units permutes them like the matrices.
    """
    mats = [m for m, _ in layout.matrices()]
    if criterion == "magnitude":
        return [m * m for m in mats]
    fisher = _dense_fisher(est, X, y, random_state=random_state)
    out = []
    for lt, m, f in zip(layout.layers, mats, fisher):
        if lt.kind == "dense":
            out.append(np.ascontiguousarray(f.T))
            continue
        co, ci = f.shape[:2]
        so, si = lt.out_unit_size, lt.in_unit_size
        m2 = (m * m).reshape(co, so, ci, si)
        block = m2.sum(axis=(1, 3))
        ratio = np.divide(f.sum(axis=(2, 3)), block, out=np.zeros_like(block),
                          where=block > 0)
        out.append((m2 * ratio[:, None, :, None]).reshape(m.shape))
    return out


def tile_mass(imp, block):
    """Sum of ``imp`` over every ``block`` tile (zero-padded at the edges).

    Parameters
    ----------
    imp : ndarray of shape (n_out, n_in)
        Importance of every matrix entry.
    block : tuple of int
        Tile block in (out, in) coordinates.

    Returns
    -------
    mass : ndarray of shape (tile rows, tile columns)
    """
    r, c = block
    gr, gc = -(-imp.shape[0] // r), -(-imp.shape[1] // c)
    padded = np.zeros((gr * r, gc * c))
    padded[:imp.shape[0], :imp.shape[1]] = imp
    return padded.reshape(gr, r, gc, c).sum(axis=(1, 3))


def keep_tiles(masses, target, scope="global", min_keep=1):
    """The heaviest tiles of every layer under a budget.

    Parameters
    ----------
    masses : list of ndarray
        Tile importance grids, one per layer.
    target : float
        Fraction of tiles to drop, per layer or over all layers.
    scope : {"layer", "global"}, default="global"
    min_keep : int or list of int, default=1
        Tiles every layer keeps at least (one value per layer or one for all).

    With ``scope="global"`` every layer's masses are divided by their mean
    over the layer's tiles (a scale that no permutation changes) before the
    network-wide ranking.

    Returns
    -------
    keep : list of ndarray of bool
        One grid per layer, True for the kept tiles.
    """
    flat = []
    for m in masses:
        v = m.ravel().astype(float)
        if scope == "global" and v.sum() > 0:
            v = v * (v.size / v.sum())
        flat.append(v)
    floors = np.broadcast_to(np.asarray(min_keep, dtype=int), (len(flat),))
    keys = []
    for v, f in zip(flat, floors):
        k = v.copy()
        top = np.argsort(-v, kind="stable")[:max(int(f), 1)]
        k[top] = np.inf                              # the floor is never dropped
        keys.append(k)
    if scope == "layer":
        drops = [np.argsort(k, kind="stable")[:n_to_drop(target, k.size, int(f))]
                 for k, f in zip(keys, floors)]
        out = []
        for m, d in zip(masses, drops):
            keep = np.ones(m.size, dtype=bool)
            keep[d] = False
            out.append(keep.reshape(m.shape))
        return out
    allk = np.concatenate(keys)
    n_floor = int(sum(max(int(f), 1) for f in floors))
    drop = np.zeros(allk.size, dtype=bool)
    drop[np.argsort(allk, kind="stable")[:n_to_drop(target, allk.size, n_floor)]] = True
    out, start = [], 0
    for m in masses:
        out.append(~drop[start:start + m.size].reshape(m.shape))
        start += m.size
    return out


def unit_tile_mass(imp, unit_size, block, axis):
    """Importance of every unit per tile of the other axis.

    Parameters
    ----------
    imp : ndarray of shape (n_out, n_in)
        Importance of every matrix entry.
    unit_size : int
        Rows (``axis=0``) or columns (``axis=1``) per unit.
    block : tuple of int
        Tile block in (out, in) coordinates.
    axis : {0, 1}
        Units are output units (rows) or input units (columns).

    Returns
    -------
    mass : ndarray of shape (n_units, tile columns or tile rows)
    """
    M = imp if axis == 0 else imp.T
    b = block[1] if axis == 0 else block[0]
    n = M.shape[0] // unit_size
    per = M[:n * unit_size].reshape(n, unit_size, M.shape[1]).sum(axis=1)
    g = -(-M.shape[1] // b)
    padded = np.zeros((n, g * b))
    padded[:, :M.shape[1]] = per
    return padded.reshape(n, g, b).sum(axis=2)


def _permute_units(imp, perm, unit_size, axis):
    """``imp`` with its units (blocks of ``unit_size`` rows or columns) reordered."""
    idx = (perm[:, None] * unit_size + np.arange(unit_size)[None, :]).ravel()
    return imp[idx] if axis == 0 else imp[:, idx]


def _interfaces(layout, permute_inputs, permute_outputs):
    """Permutable interfaces: (key, rows-side layer or None, cols-side layer or None, group size)."""
    L = len(layout.layers)
    out = []
    if permute_inputs and layout.layers[0].kind == "dense":
        out.append(("input", None, 0, layout.layers[0].block_shape[1]))
    for key in range(L - 1):
        A, B = layout.layers[key], layout.layers[key + 1]
        su, sv = A.out_unit_size, B.in_unit_size
        ra, cb = A.block_shape[0], B.block_shape[1]
        if su >= ra or ra % su or cb % sv or ra // su != cb // sv:
            continue
        out.append((key, key, key + 1, ra // su))
    if permute_outputs and layout.layers[-1].kind == "dense":
        out.append(("output", L - 1, None, layout.layers[-1].block_shape[0]))
    return [spec for spec in out if spec[3] >= 2]


def apply_permutation(net, key, perm):
    """Permute one interface of a network in place (function-preserving).

    Parameters
    ----------
    net : Network
        The network (``estimator.network_``).
    key : int, "input" or "output"
        Hidden interface after weight layer ``key``, or the inputs / outputs.
    perm : ndarray of int
        New order of the units.
    """
    if key == "input":
        net.permute_io(input_perm=perm)
    elif key == "output":
        net.permute_io(output_perm=perm)
    else:
        net.permute_hidden(key, perm)


def _assign(gain, group_size):
    """Balanced assignment of units to groups maximising ``gain`` (units x groups)."""
    n, n_groups = gain.shape
    caps = [group_size] * (n_groups - 1) + [n - group_size * (n_groups - 1)]
    slot_group = np.repeat(np.arange(n_groups), caps)
    _, cols = linear_sum_assignment(-gain[:, slot_group])
    return slot_group[cols]


def budget_permutation(est, layout, imps, target, *, scope="global", min_keep=1,
                       permute_inputs=False, permute_outputs=False, max_iter=10,
                       n_init=1, random_state=None):
    """Permute hidden units to keep the most importance in the tiles of the budget.

    Alternates, until nothing improves: keep the heaviest tiles under the
    budget (:func:`keep_tiles`); for every permutable interface, re-place its
    units by a balanced linear assignment maximising the importance they put
    in kept tiles of both adjacent matrices. The permutations are applied to
    ``est`` (function-preserving, like :class:`~skhepex.pruning.Permuter`).

    Parameters
    ----------
    est : estimator
        A fitted skhepex network, permuted in place.
    layout : TileLayout
        Its tiling before the permutation.
    imps : list of ndarray
        Importance matrices of the layers (:func:`importance_matrices`).
    target : float
        Fraction of tiles the budget drops (as ``TilePruner.tile_sparsity``).
    scope : {"layer", "global"}, default="global"
        Budget per layer or over the network.
    min_keep : int or list of int, default=1
        Tiles every layer keeps at least.
    permute_inputs, permute_outputs : bool, default=False
        Also permute the input features / the outputs of dense end layers.
    max_iter : int, default=10
        Most alternations.
    n_init : int, default=1
        Starts: the current order, then random orders; the best is kept.
    random_state : int, RandomState instance or None, default=None
        Draws the random starts.

    Returns
    -------
    perms : dict
        Composed permutation of every permuted interface (keys as
        ``Permuter.permutations_``).
    kept_before, kept_after : float
        Importance inside the kept tiles, without and with the permutation:
        the mean over all tiles of the layer-normalised tile mass (1 when
        every tile is kept).
    """
    rng = check_random_state(random_state)
    blocks = [lt.block_shape for lt in layout.layers]
    sizes = [(lt.out_unit_size, lt.in_unit_size) for lt in layout.layers]
    # layer weights: the normalisation keep_tiles applies with scope="global"
    scales = [lt.n_tiles / max(float(m.sum()), 1e-300) for lt, m in zip(layout.layers, imps)]
    n_total = float(sum(lt.n_tiles for lt in layout.layers))
    specs = _interfaces(layout, permute_inputs, permute_outputs)

    def kept(ims):
        masses = [tile_mass(m, b) for m, b in zip(ims, blocks)]
        keep = keep_tiles(masses, target, scope, min_keep)
        value = sum(float((m * k).sum()) * s for m, k, s in zip(masses, keep, scales))
        return value / n_total, keep

    def run(ims, perms):
        value, keep = kept(ims)
        for _ in range(max_iter):
            improved = False
            for key, a, b, g in specs:
                n = None
                gain = 0.0
                if a is not None:
                    R = unit_tile_mass(ims[a], sizes[a][0], blocks[a], 0) * scales[a]
                    n = R.shape[0]
                    gain = gain + R @ keep[a].T.astype(float)
                if b is not None:
                    C = unit_tile_mass(ims[b], sizes[b][1], blocks[b], 1) * scales[b]
                    n = C.shape[0]
                    gain = gain + C @ keep[b].astype(float)
                groups = np.arange(n) // g
                cur = gain[np.arange(n), groups].sum()
                new = _assign(gain, g)
                if gain[np.arange(n), new].sum() <= cur * (1 + 1e-9) + 1e-12:
                    continue
                perm = np.argsort(new, kind="stable")
                if a is not None:
                    ims[a] = _permute_units(ims[a], perm, sizes[a][0], 0)
                if b is not None:
                    ims[b] = _permute_units(ims[b], perm, sizes[b][1], 1)
                perms[key] = perms.get(key, np.arange(n))[perm]
                new_value, keep = kept(ims)
                improved = improved or new_value > value + 1e-12
                value = max(value, new_value)
            if not improved:
                break
        return value, perms

    before, _ = kept(imps)
    best_value, best_perms = run(list(imps), {})
    for _ in range(n_init - 1):
        ims, perms = list(imps), {}
        for key, a, b, g in specs:
            n = (imps[a].shape[0] // sizes[a][0]) if a is not None else \
                imps[b].shape[1] // sizes[b][1]
            perm = rng.permutation(n)
            if a is not None:
                ims[a] = _permute_units(ims[a], perm, sizes[a][0], 0)
            if b is not None:
                ims[b] = _permute_units(ims[b], perm, sizes[b][1], 1)
            perms[key] = perm
        value, perms = run(ims, perms)
        if value > best_value + 1e-12:
            best_value, best_perms = value, perms
    for key, perm in best_perms.items():
        apply_permutation(est.network_, key, perm)
    return best_perms, before, best_value
