import numpy as np
import pytest

from skhepex import Autoencoder, CNNClassifier, MLPClassifier, MLPRegressor, TileLayout
from skhepex.pruning import MagnitudePruner, Permuter
from skhepex.pruning._base import block_l21
from skhepex.pruning.permuter import balanced_clustering


def _random_prune(est, sparsity, rng):
    for layer in est.network_.weight_layers:
        layer.mask &= rng.rand(*layer.W.shape) > sparsity
    est.network_.apply_masks()
    return est


def _check(est, X, tile_shape, method, **kw):
    step = Permuter(random_state=0, max_iter=3, **kw)
    out = step.prune(est, X, None if method == "ae" else est._y_fit, tile_shape=tile_shape)
    fn = {"proba": "predict_proba", "predict": "predict", "ae": "predict"}[method]
    np.testing.assert_allclose(getattr(out, fn)(X), getattr(est, fn)(X), atol=1e-9, rtol=0)
    before = TileLayout(est, tile_shape).n_nonzero_tiles
    after = TileLayout(out, tile_shape).n_nonzero_tiles
    assert after <= before
    assert step.n_nonzero_tiles_before_ == before and step.n_nonzero_tiles_ == after
    return step, out


@pytest.mark.parametrize("hidden", [(24, 16), (32, 16, 24), (16, 24, 16, 8)])
@pytest.mark.parametrize("sparsity", [0.6, 0.95])
@pytest.mark.parametrize("tile_shape", [(8, 8), (4, 8)])
def test_mlp_predictions_identical(digits, hidden, sparsity, tile_shape):
    X, y = digits
    rng = np.random.RandomState(len(hidden))
    clf = MLPClassifier(hidden_layer_sizes=hidden, max_iter=2, random_state=0).fit(X, y)
    clf = _random_prune(clf, sparsity, rng)
    clf._y_fit = y
    _check(clf, X, tile_shape, "proba")


@pytest.mark.parametrize("io", [(True, False), (False, True), (True, True)])
def test_io_permutation_predictions_identical(digits, io):
    X, y = digits
    rng = np.random.RandomState(1)
    reg = MLPRegressor(hidden_layer_sizes=(24,), max_iter=2, random_state=0)
    Y = np.c_[y, y ** 2, -y, y / 2, y % 3, y % 4, y % 5, y % 2, y % 7, y % 6]
    reg.fit(X, Y)
    reg = _random_prune(reg, 0.9, rng)
    reg._y_fit = Y
    step, out = _check(reg, X, (4, 4), "predict", permute_inputs=io[0], permute_outputs=io[1])
    if io[0]:
        assert out.network_.input_perm is not None


def test_autoencoder_predictions_identical(digits):
    X, _ = digits
    ae = Autoencoder(hidden_layer_sizes=(48, 16, 48), max_iter=2, random_state=0).fit(X)
    ae = _random_prune(ae, 0.9, np.random.RandomState(0))
    step, out = _check(ae, X, (8, 8), "ae", permute_inputs=True, permute_outputs=True)
    # the code units are permuted (a relabelling of the code features) ...
    code, code0 = out.transform(X), ae.transform(X)
    perm = step.permutations_.get(1, np.arange(code.shape[1]))
    np.testing.assert_allclose(code, code0[:, perm], atol=1e-9)
    # ... consistently with the decoder
    np.testing.assert_allclose(out.inverse_transform(code), ae.inverse_transform(code0),
                               atol=1e-9)


@pytest.mark.parametrize("tile_shape", [(8, 8), (4, 8)])
def test_cnn_predictions_identical(digits, tile_shape):
    X, y = digits
    cnn = CNNClassifier(conv_channels=(4, 8), hidden_layer_sizes=(16,), max_iter=1,
                        random_state=0).fit(X, y)
    cnn = _random_prune(cnn, 0.7, np.random.RandomState(0))
    cnn._y_fit = y
    step, out = _check(cnn, X, tile_shape, "proba")
    with pytest.raises(ValueError, match="dense first layer"):
        Permuter(permute_inputs=True).prune(cnn, X, y)


def test_cnn_channels_regroup(digits):
    # 8 channels of 2x2 maps: two channels share an 8-row tile of conv_1 and an
    # 8-column tile of the dense layer. Pair up channels that only feed the
    # same output tile: the permuter must find the pairing.
    X, y = digits
    cnn = CNNClassifier(conv_channels=(4, 8), max_iter=1, random_state=0).fit(X, y)
    net = cnn.network_
    dense = net.weight_layers[2]          # W (32, 10): 8 channels x 4 positions
    lay = TileLayout(cnn, (8, 8))
    assert lay.layers[1].out_unit_size == 4 and lay.layers[2].in_unit_size == 4
    # channels 0,2,4,6 -> outputs 0-7 ; channels 1,3,5,7 -> outputs 8-9
    for c in range(8):
        rows = slice(4 * c, 4 * c + 4)
        if c % 2 == 0:
            dense.mask[rows, 8:] = False
        else:
            dense.mask[rows, :8] = False
    net.apply_masks()
    cnn._y_fit = y
    step, out = _check(cnn, X, (8, 8), "proba")
    assert step.n_nonzero_tiles_ < step.n_nonzero_tiles_before_
    assert TileLayout(out, (8, 8)).layers[2].n_nonzero_tiles == 4


def test_recovers_shuffled_block_structure(digits):
    X, y = digits
    clf = MLPClassifier(hidden_layer_sizes=(32, 32), max_iter=2, random_state=0).fit(X, y)
    net = net0 = clf.network_
    a, b, c = net.weight_layers
    a.mask[:] = False
    b.mask[:] = False
    for k in range(4):
        a.mask[16 * k:16 * (k + 1), 8 * k:8 * (k + 1)] = True
        b.mask[8 * k:8 * (k + 1), 8 * k:8 * (k + 1)] = True
    net.apply_masks()
    ideal = TileLayout(clf, (8, 8)).n_nonzero_tiles
    rng = np.random.RandomState(0)
    net0.permute_hidden(0, rng.permutation(32))
    net0.permute_hidden(1, rng.permutation(32))
    shuffled = TileLayout(clf, (8, 8)).n_nonzero_tiles
    assert shuffled > ideal
    clf._y_fit = y
    step, out = _check(clf, X, (8, 8), "proba")
    assert step.n_nonzero_tiles_ == ideal


def test_concentrates_mass_after_magnitude_pruning(digits):
    X, y = digits
    clf = MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=5, random_state=0).fit(X, y)
    pruned = MagnitudePruner(sparsity=0.9, fine_tune_iter=1).prune(clf, X, y)
    step = Permuter(random_state=0)
    out = step.prune(pruned, X, y, tile_shape=(8, 8))
    assert step.concentration_ <= step.concentration_before_
    assert block_l21(TileLayout(out, (8, 8))) == pytest.approx(step.concentration_)
    assert set(step.permutations_) <= {0, 1}


def test_balanced_clustering_groups_are_balanced():
    rng = np.random.RandomState(0)
    F = rng.rand(30, 6) * (rng.rand(30, 6) > 0.6)
    perm = balanced_clustering(F, 8, rng)
    assert sorted(perm.tolist()) == list(range(30))
