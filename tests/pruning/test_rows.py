"""Tile-row awareness: TilePruner(row_cost=...) and the Permuter's live-row objective."""

import numpy as np
import pytest

from skhepex import CNNClassifier, MLPClassifier, TileLayout
from skhepex.pruning import MagnitudePruner, Permuter, TilePruner
from skhepex.pruning.permuter import _compact_dead, _group_cost, live_rows
from skhepex.pruning.units import _greedy_drop, unit_rows


def _mlp(X, y, hidden=(64, 64)):
    return MLPClassifier(hidden_layer_sizes=hidden, max_iter=5, random_state=0).fit(X, y)


def test_greedy_drop_empties_rows():
    # two rows of 4 units; row 1 has one important unit, but emptying it saves a row
    scores = np.array([1.0, 1.0, 1.0, 1.0, 0.9, 0.9, 0.9, 2.0])
    rows = np.repeat([0, 1], 4)
    no_rows = _greedy_drop(scores, rows, np.zeros(2), 4, np.zeros(8, bool))
    assert set(np.flatnonzero(no_rows)) == {4, 5, 6, 0}      # by score: both rows live
    with_rows = _greedy_drop(scores, rows, np.array([200.0, 200.0]), 4, np.zeros(8, bool))
    assert set(np.flatnonzero(with_rows)) == {4, 5, 6, 7}    # empties row 1
    prot = np.zeros(8, bool)
    prot[0] = True
    assert not _greedy_drop(scores, rows, np.array([20.0, 20.0]), 4, prot)[0]


def test_unit_rows_dense_and_conv(digits):
    X, y = digits
    clf = _mlp(X, y)
    lay = TileLayout(clf, (8, 8))
    g, n = unit_rows(lay, 0)
    assert g.shape == (lay.layers[0].n_units,) and n.sum() == lay.layers[0].grid[0]
    cnn = CNNClassifier(conv_channels=(4, 8), max_iter=1, random_state=0).fit(X, y)
    lay = TileLayout(cnn, (8, 8))
    for i in range(len(lay.layers)):
        g, n = unit_rows(lay, i)
        assert g.shape == (lay.layers[i].n_units,)
        assert n.sum() == lay.layers[i].grid[0]


def test_tile_pruner_row_cost_empties_more_rows(digits):
    X, y = digits
    clf = _mlp(X, y)
    kw = dict(tile_sparsity=0.8, scope="global", n_steps=1, fine_tune_iter=1)
    plain = TilePruner(**kw).prune(clf, X, y, tile_shape=(8, 8))
    step = TilePruner(row_cost=30.0, **kw)
    rowed = step.prune(clf, X, y, tile_shape=(8, 8))
    assert step.row_costs_ == [30.0, 30.0, 30.0]
    assert live_rows(TileLayout(rowed, (8, 8))) < live_rows(TileLayout(plain, (8, 8)))
    # the target fraction of units is still met, outputs stay connected
    assert np.mean(step.unit_sparsity_) >= 0.5
    assert TileLayout(rowed, (8, 8)).layers[-1].tile_mask.any(axis=1).all()


def test_tile_pruner_row_cost_per_layer_and_errors(digits):
    X, y = digits
    clf = _mlp(X, y, hidden=(32,))
    step = TilePruner(tile_sparsity=0.5, row_cost=[10.0, 0.0], n_steps=1, fine_tune_iter=0)
    step.prune(clf, X, y, tile_shape=(8, 8))
    assert step.row_costs_ == [10.0, 0.0]
    with pytest.raises(ValueError, match="row_cost"):
        TilePruner(row_cost=[1.0], fine_tune_iter=0).prune(clf, X, y)
    with pytest.raises(ValueError):
        TilePruner(row_cost=-1.0).prune(clf, X, y)


def test_compact_dead_fills_whole_groups():
    live = np.zeros(16, bool)
    live[::2] = True                      # interleaved: both groups of 8 live
    perm = _compact_dead(live, np.arange(16), 8)
    assert sorted(perm) == list(range(16))
    assert live[perm[:8]].all() and not live[perm[8:]].any()


def test_group_cost_weights_columns():
    F = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert _group_cost(F, np.array([0, 0]), 1)[0] == 2
    assert _group_cost(F, np.array([0, 0]), 1, np.array([1.0, 3.0]))[0] == 4


def test_permuter_gathers_constant_units_into_empty_rows(digits):
    X, y = digits
    clf = _mlp(X, y, hidden=(32,))
    # kill the incoming weights of every other hidden unit: constants
    layer = clf.network_.weight_layers[0]
    layer.mask[:, ::2] = False
    clf.network_.apply_masks()
    before = live_rows(TileLayout(clf, (8, 8)))
    step = Permuter(random_state=0)
    out = step.prune(clf, X, y, tile_shape=(8, 8))
    np.testing.assert_allclose(out.predict_proba(X), clf.predict_proba(X), atol=1e-9)
    lay = TileLayout(out, (8, 8))
    assert step.n_live_rows_ == live_rows(lay) < before
    assert lay.n_nonzero_tiles <= TileLayout(clf, (8, 8)).n_nonzero_tiles
