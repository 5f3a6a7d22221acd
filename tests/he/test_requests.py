"""Request-sized packing: every request size runs on a packing suited to it."""
import copy
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skhepex import Autoencoder, CNNClassifier, MLPClassifier, TileLayout
from skhepex.he import HEPredictor
from skhepex.he.requests import request_size_class

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
SIZES = [1, 3, 9, 33, 70]


def _fit(est, X, y=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X) if y is None else est.fit(X, y)


def _prune(est, tile_shape=(8, 8), fraction=0.4):
    est = copy.deepcopy(est)
    rng = np.random.default_rng(0)
    for layer, wl in zip(TileLayout(est, tile_shape).layers, est.network_.weight_layers):
        dead = rng.random(layer.n_units) < fraction
        dead[0] = False
        wl.mask &= ~dead[layer.weight_units]
    est.network_.apply_masks()
    return est


def test_request_size_class():
    assert [request_size_class(n) for n in (1, 2, 3, 64, 65, 4096)] == [1, 2, 4, 64, 128, 4096]


@pytest.mark.parametrize("kind", ["mlp", "mlp_pruned", "ae", "cnn"])
def test_every_request_size_matches_plaintext(digits, kind):
    X_train, X_test, y_train, _ = digits
    if kind == "ae":
        est = _fit(Autoencoder(hidden_layer_sizes=(12,), max_iter=20, random_state=0), X_train)
        ref, method = est.predict, "predict"
    elif kind == "cnn":
        est = _fit(CNNClassifier(conv_channels=(2,), max_iter=5, random_state=0),
                   X_train, y_train)
        ref, method = est.decision_function, "decision_function"
    else:
        est = _fit(MLPClassifier(hidden_layer_sizes=(16,), max_iter=20, random_state=0),
                   X_train, y_train)
        if kind == "mlp_pruned":
            est = _prune(est)
        ref, method = est.decision_function, "decision_function"
    he = HEPredictor(est, prefit=True).fit()
    shapes = set()
    for n in SIZES:                     # the request size changes between calls
        X = X_test[:n]
        got = getattr(he, method)(X)
        want = ref(X)
        np.testing.assert_allclose(got, want, atol=1e-3 * max(1.0, np.abs(want).max()))
        if kind != "ae":
            np.testing.assert_array_equal(he.predict(X), est.predict(X))
        shapes.add(he._sized("predict", n)[0].tile_shape)
    assert len(shapes) >= 2            # small and large requests use different packings
    for server in he._servers.values():
        assert not server.context.has_secret_key()


def test_explicit_or_pruned_tile_shape_is_kept(digits):
    X_train, X_test, y_train, _ = digits
    est = _fit(MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0),
               X_train, y_train)
    he = HEPredictor(est, prefit=True, tile_shape=(8, 8)).fit()
    assert he._sized("predict", 1)[0] is he.plan_
    fixed = HEPredictor(est, prefit=True, batch_size=4, mode="simulate").fit()
    assert fixed._sized("predict", 1)[0] is fixed.plan_


def test_small_request_packs_fewer_slots(digits):
    X_train, X_test, y_train, _ = digits
    est = _fit(MLPClassifier(hidden_layer_sizes=(32,), max_iter=5, random_state=0),
               X_train, y_train)
    he = HEPredictor(est, prefit=True).fit()
    plan1 = he._sized("predict", 1)[0]
    assert plan1.batch < he.plan_.batch          # more of each ciphertext for one sample
    rep = he.measure(X_test[:1])
    assert rep.tile_shape == plan1.tile_shape and rep.measured["n_samples"] == 1
    assert "of the slots used" in str(rep)
