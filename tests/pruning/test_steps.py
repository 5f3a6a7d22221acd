import copy

import numpy as np
import pytest

from skhepex import Autoencoder, CNNClassifier, MLPClassifier, MLPRegressor, TileLayout
from skhepex.pruning import Expander, MagnitudePruner, Permuter, TilePruner
from skhepex.pruning._base import remove_dead_units, tile_norms


def _mlp(X, y, hidden=(32, 32), seed=0):
    return MLPClassifier(hidden_layer_sizes=hidden, max_iter=5, random_state=seed).fit(X, y)


def _weights(est):
    return [layer.W.copy() for layer in est.network_.weight_layers]


def test_prune_does_not_modify_input(digits):
    X, y = digits
    clf = _mlp(X, y)
    before = _weights(clf)
    for step in [MagnitudePruner(fine_tune_iter=1), Permuter(random_state=0),
                 TilePruner(fine_tune_iter=1), Expander(fine_tune_iter=1)]:
        out = step.prune(clf, X, y, tile_shape=(8, 8))
        assert out is not clf
        for a, b in zip(before, _weights(clf)):
            np.testing.assert_array_equal(a, b)
        assert step.n_nonzero_tiles_ == TileLayout(out, (8, 8)).n_nonzero_tiles


def test_prune_requires_fitted_network(digits):
    X, y = digits
    with pytest.raises(Exception, match="not fitted"):
        TilePruner().prune(MLPClassifier(), X, y)
    with pytest.raises(TypeError, match="skhepex networks"):
        TilePruner().prune(object(), X, y)
    with pytest.raises(ValueError):
        TilePruner(tile_sparsity=1.5).prune(_mlp(X, y), X, y)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_magnitude_pruner_sparsity(digits, scope):
    X, y = digits
    clf = _mlp(X, y)
    step = MagnitudePruner(sparsity=0.75, scope=scope, n_steps=2, fine_tune_iter=2)
    out = step.prune(clf, X, y)
    assert step.sparsity_ == pytest.approx(0.75, abs=0.01)
    if scope == "layer":
        assert np.allclose(step.layer_sparsity_, 0.75, atol=0.01)
    for layer in out.network_.weight_layers:
        assert np.all(layer.W[~layer.mask] == 0)
        assert layer.mask.any()


@pytest.mark.parametrize("criterion", ["l2", "l1", "max"])
def test_tile_pruner_layer_fraction(digits, criterion):
    X, y = digits
    clf = _mlp(X, y, hidden=(64, 32))
    step = TilePruner(tile_sparsity=0.5, criterion=criterion, scope="layer", fine_tune_iter=1)
    out = step.prune(clf, X, y, tile_shape=(8, 8))
    lay = TileLayout(out, (8, 8))
    for frac, lt in zip(step.unit_sparsity_, lay.layers):
        k = int(round(0.5 * lt.n_units))
        # dead-unit cleanup may empty a few more; the output rule may keep one
        assert frac * lt.n_units >= k - lt.grid[0]
    # hidden layers: at least the requested fraction
    assert all(f >= 0.5 for f in step.unit_sparsity_[:-1])
    assert step.n_nonzero_tiles_ <= 0.5 * lay.n_tiles + lay.layers[-1].grid[0]


def test_tile_pruner_global_fraction(digits):
    X, y = digits
    clf = _mlp(X, y, hidden=(64, 32))
    step = TilePruner(tile_sparsity=0.6, scope="global", n_steps=1, fine_tune_iter=0)
    out = step.prune(clf, X, y, tile_shape=(8, 8))
    lay = TileLayout(out, (8, 8))
    zero_units = sum(f * n for f, n in zip(step.unit_sparsity_, step.n_units_))
    assert zero_units >= round(0.6 * sum(step.n_units_)) - lay.layers[-1].grid[0]
    # no output is disconnected
    assert lay.layers[-1].tile_mask.any(axis=1).all()


def test_tile_pruner_threshold(digits):
    X, y = digits
    clf = _mlp(X, y)
    step = TilePruner(threshold=0.9, fine_tune_iter=0)
    out = step.prune(clf, X, y, tile_shape=(8, 8))
    assert TileLayout(out, (8, 8)).n_nonzero_tiles < TileLayout(clf, (8, 8)).n_nonzero_tiles


def test_tile_pruner_units_are_layout_tiles(digits):
    # a dense unit is exactly one tile of the layer's orientation
    X, y = digits
    clf = _mlp(X, y, hidden=(40, 24))
    out = TilePruner(tile_sparsity=0.5, n_steps=1, fine_tune_iter=0).prune(
        clf, X, y, tile_shape=(4, 8))
    lay = TileLayout(out, (4, 8))
    for i, (lt, layer) in enumerate(zip(lay.layers, out.network_.weight_layers)):
        alive = np.bincount(lt.weight_units.ravel(), (layer.W != 0).ravel(),
                            minlength=lt.n_units) > 0
        np.testing.assert_array_equal(alive.reshape(lt.grid), lt.tile_mask)
        np.testing.assert_array_equal(tile_norms(lay, i) > 0, lt.tile_mask)


def test_tile_pruner_conv(digits):
    X, y = digits
    cnn = CNNClassifier(conv_channels=(4, 8), max_iter=2, random_state=0).fit(X, y)
    step = TilePruner(tile_sparsity=0.5, n_steps=1, fine_tune_iter=1)
    out = step.prune(cnn, X, y, tile_shape=(8, 8))
    assert step.n_nonzero_tiles_ < TileLayout(cnn, (8, 8)).n_nonzero_tiles
    assert all(f >= 0.45 for f in step.unit_sparsity_[:-1])
    assert out.score(X, y) > 0.1


@pytest.mark.parametrize("tile_shape", [(8, 8), (4, 8)])
def test_expander_never_adds_tiles(digits, tile_shape):
    X, y = digits
    clf = _mlp(X, y)
    pruned = MagnitudePruner(sparsity=0.9, fine_tune_iter=1).prune(clf, X, y)
    tiled = TilePruner(tile_sparsity=0.6, fine_tune_iter=1, regrow=False).prune(
        pruned, X, y, tile_shape)
    step = Expander(fine_tune_iter=3)
    out = step.prune(tiled, X, y, tile_shape)
    before, after = TileLayout(tiled, tile_shape), TileLayout(out, tile_shape)
    assert step.n_regrown_ > 0
    for lb, la in zip(before.layers, after.layers):
        assert not np.any(la.tile_mask & ~lb.tile_mask)
    # weights inside kept tiles were released (masks are the union of kept tiles)
    for lt, layer in zip(before.layers, out.network_.weight_layers):
        alive = lt.tile_mask.ravel()[lt.weight_units]
        np.testing.assert_array_equal(layer.mask, alive)
    assert after.n_nonzero_tiles <= before.n_nonzero_tiles


def test_expander_conv_never_adds_tiles(digits):
    X, y = digits
    cnn = CNNClassifier(conv_channels=(4, 8), max_iter=2, random_state=0).fit(X, y)
    pruned = MagnitudePruner(sparsity=0.9, fine_tune_iter=1).prune(cnn, X, y)
    tiled = TilePruner(tile_sparsity=0.5, fine_tune_iter=1).prune(pruned, X, y, (4, 8))
    out = Expander(fine_tune_iter=2).prune(tiled, X, y, (4, 8))
    before, after = TileLayout(tiled, (4, 8)), TileLayout(out, (4, 8))
    for lb, la in zip(before.layers, after.layers):
        assert not np.any(la.tile_mask & ~lb.tile_mask)


def test_remove_dead_units_preserves_function(digits):
    X, y = digits
    clf = _mlp(X, y)
    net = clf.network_
    net.weight_layers[0].mask[:, :8] = False      # neurons 0-7 lose their inputs
    net.weight_layers[1].mask[:, 8:16] = False    # layer-2 neurons 8-15 lose inputs
    net.weight_layers[2].mask[16:24] = False      # layer-2 neurons 16-23 lose outputs
    net.apply_masks()
    p0 = clf.predict_proba(X)
    t0 = TileLayout(clf, (8, 8)).n_nonzero_tiles
    assert remove_dead_units(clf) > 0
    np.testing.assert_allclose(clf.predict_proba(X), p0, atol=1e-12)
    assert TileLayout(clf, (8, 8)).n_nonzero_tiles < t0


def test_regressor_and_autoencoder_steps(digits):
    X, y = digits
    reg = MLPRegressor(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(X, y)
    ae = Autoencoder(hidden_layer_sizes=(32, 16, 32), max_iter=3, random_state=0).fit(X)
    for est, target in [(reg, y), (ae, None)]:
        net = est
        for step in [MagnitudePruner(fine_tune_iter=1), Permuter(random_state=0),
                     TilePruner(fine_tune_iter=1), Expander(fine_tune_iter=1)]:
            net = step.prune(net, X, target, tile_shape=(8, 8))
        assert type(net) is type(est)
        assert np.isfinite(net.score(X, target))


def test_steps_are_estimators():
    from sklearn.base import clone
    for step in [MagnitudePruner(sparsity=0.5), Permuter(max_iter=3), TilePruner(scope="global"),
                 Expander(fine_tune_iter=2)]:
        c = clone(step)
        assert c.get_params() == step.get_params()
        assert copy.deepcopy(step).get_params() == step.get_params()


@pytest.mark.parametrize("make", [
    lambda X, y: (MLPClassifier(hidden_layer_sizes=(32,), max_iter=3, random_state=0).fit(X, y), y),
    lambda X, y: (Autoencoder(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(X), None),
    lambda X, y: (CNNClassifier(conv_channels=(4, 8), max_iter=1, random_state=0).fit(X, y), y),
])
def test_tile_pruner_taylor_and_regrow(digits, make):
    X, y = digits
    est, target = make(X, y)
    sparse = MagnitudePruner(sparsity=0.8, n_steps=1, fine_tune_iter=1).prune(est, X, target)
    step = TilePruner(tile_sparsity=0.5, criterion="taylor", scope="global", regrow=True,
                      n_steps=2, fine_tune_iter=1)
    out = step.prune(sparse, X, target, tile_shape=(8, 8))
    lay = TileLayout(out, (8, 8))
    assert lay.n_nonzero_tiles < TileLayout(sparse, (8, 8)).n_nonzero_tiles
    # regrowth released weights, but only inside surviving tiles
    assert step.sparsity_ < 0.8
    if est.network_.weight_layers[0].kind == "dense":
        for lt, layer in zip(lay.layers, out.network_.weight_layers):
            alive = lt.tile_mask.ravel()[lt.weight_units]
            assert not np.any(layer.mask & ~alive)


def test_tile_pruner_keeps_outputs_connected(digits):
    X, y = digits
    clf = _mlp(X, y, hidden=(64, 64))
    out = TilePruner(tile_sparsity=0.97, scope="global", n_steps=2,
                     fine_tune_iter=2).prune(clf, X, y, tile_shape=(8, 8))
    last = TileLayout(out, (8, 8)).layers[-1]
    assert last.tile_mask.any(axis=1).all()


@pytest.mark.parametrize("make", [
    lambda X, y: (MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=20,
                                random_state=0).fit(X, y), y),
    lambda X, y: (Autoencoder(hidden_layer_sizes=(32, 16, 32), max_iter=30,
                              random_state=0).fit(X), None),
    lambda X, y: (CNNClassifier(conv_channels=(4, 8), max_iter=1, random_state=0).fit(X, y), y),
])
def test_tile_pruner_reconstruct(digits, make):
    # refitting the kept weights to the unpruned layer outputs changes no tile and
    # leaves the pruned network closer to the dense one before any fine-tuning
    X, y = digits
    est, target = make(X, y)
    outs = {}
    for rec in (False, True):
        step = TilePruner(tile_sparsity=0.7, n_steps=1, fine_tune_iter=0, reconstruct=rec,
                          random_state=0)
        outs[rec] = step.prune(est, X, target, tile_shape=(8, 8))
    tiles = [TileLayout(o, (8, 8)) for o in outs.values()]
    assert tiles[0].n_nonzero_tiles == tiles[1].n_nonzero_tiles
    for lt0, lt1 in zip(tiles[0].layers, tiles[1].layers):
        assert not np.any(lt1.tile_mask & ~lt0.tile_mask)
    for layer in outs[True].network_.weight_layers:
        assert not np.any(layer.W[~layer.mask])
    ref = est.predict_proba(X) if target is not None else est.predict(X)
    err = {rec: np.mean(((o.predict_proba(X) if target is not None else o.predict(X))
                         - ref) ** 2) for rec, o in outs.items()}
    if est.network_.weight_layers[0].kind == "dense":
        assert err[True] < err[False]
    assert np.isfinite(err[True])
