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


@pytest.mark.parametrize("kind", ["mlp", "mlp_pruned", "hepex", "ae", "cnn"])
def test_every_request_size_matches_plaintext(digits, kind):
    X_train, X_test, y_train, _ = digits
    if kind == "ae":
        est = _fit(Autoencoder(hidden_layer_sizes=(12,), max_iter=20, random_state=0), X_train)
        ref, method = est.predict, "predict"
    elif kind == "cnn":
        est = _fit(CNNClassifier(conv_channels=(2,), max_iter=5, random_state=0),
                   X_train, y_train)
        ref, method = est.decision_function, "decision_function"
    elif kind == "hepex":                # pruned for 8x8 tiles (carries its tile shape)
        from skhepex import HEPEx, TilePruner

        est = _fit(HEPEx(MLPClassifier(hidden_layer_sizes=(16,), max_iter=20, random_state=0),
                         [("tiles", TilePruner(tile_sparsity=0.5, n_steps=1,
                                               fine_tune_iter=2))], tile_shape=(8, 8)),
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


def test_set_params_after_fit_waits_for_the_next_fit(digits):
    """predict keeps the packing fit chose, including size classes compiled
    after the change; the next fit applies the new values."""
    X_train, X_test, y_train, _ = digits
    est = _fit(MLPClassifier(hidden_layer_sizes=(32,), max_iter=5, random_state=0),
               X_train, y_train)
    he = HEPredictor(est, prefit=True).fit()
    want = he.decision_function(X_test[:3])
    plan_fit = he.plan_
    he.set_params(batch_size=16, mode="simulate", max_memory=1, n_jobs=1)
    assert he._sized("predict", 9)[0].batch < plan_fit.batch    # still request-sized
    np.testing.assert_allclose(he.decision_function(X_test[:3]), want, atol=1e-3)
    assert he.encrypt(X_test[:2]).n_samples == 2                # still encrypted mode
    assert he.plan_ is plan_fit
    he.fit()                                                    # now the new values
    assert he.client_ is None                                   # simulate: no keys
    assert he._sized("predict", 9)[0] is he.plan_               # batch_size=16: as given


def test_request_tail_runs_on_a_plan_sized_to_it(digits, monkeypatch):
    """Full batches on the throughput plan; the few samples left on a small plan."""
    X_train, X_test, y_train, _ = digits
    est = _fit(MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0),
               X_train, y_train)
    he = HEPredictor(est, prefit=True).fit()
    batch = he.plan_.batch
    X = np.resize(X_test, (batch + 2, X_test.shape[1]))
    segments, used = he._segments(he._client_input(X), "predict", X.shape[0])
    assert used == X.shape[0] and len(segments) == 2
    assert segments[0][0] is he.plan_ and segments[1][0].batch < batch
    assert [(a, b) for _, _, ch in segments for a, b, _ in ch] == [(0, batch),
                                                                   (batch, batch + 2)]
    trips = []
    run = he._run_chunks

    def counting(Xc, which, plan, guard, chunks):
        trips.extend((plan.batch, b - a) for a, b, _ in chunks)
        return run(Xc, which, plan, guard, chunks)

    monkeypatch.setattr(he, "_run_chunks", counting)
    want = est.decision_function(X)
    np.testing.assert_allclose(he.decision_function(X), want,
                               atol=1e-3 * max(1.0, np.abs(want).max()))
    assert trips[0] == (batch, batch) and trips[1][1] == 2 and trips[1][0] < batch
    # without a headroom guarantee a full batch leaves one slot for a sentinel; the
    # sample it displaces is carried to the next block, not sent alone
    trips.clear()
    monkeypatch.setattr(he.guard_, "check_request", lambda Xc, which="predict": None)
    X = np.resize(X_test, (2 * batch, X_test.shape[1]))
    np.testing.assert_array_equal(he.predict(X), est.predict(X))
    assert [n for _, n in trips] == [batch - 1, batch - 1, 2]


def test_pruned_model_is_request_sized_and_never_costlier_than_dense(digits):
    """A model pruned for 8x8 tiles still gets a packing per request size."""
    from skhepex import HEPEx, TilePruner
    from skhepex.he import HECostReport
    from skhepex.he.costs import unit_costs

    X_train, X_test, y_train, _ = digits
    hepex = _fit(HEPEx(MLPClassifier(hidden_layer_sizes=(32,), max_iter=10, random_state=0),
                       [("tiles", TilePruner(tile_sparsity=0.5, n_steps=1, fine_tune_iter=2))],
                       tile_shape=(8, 8)), X_train, y_train)
    pruned = HEPredictor(hepex, prefit=True).fit()
    dense = HEPredictor(hepex.dense_estimator_, prefit=True).fit()
    assert pruned.tile_shape_ == (8, 8)
    costs = unit_costs(pruned.params_, measure=False)

    def latency(he, n):
        rep = HECostReport(he._sized("predict", n)[0], costs, "tabulated")
        return rep.predicted_seconds_per_batch + rep.predicted_client_seconds_per_batch

    for n in (1, 3):
        np.testing.assert_array_equal(pruned.predict(X_test[:n]), hepex.predict(X_test[:n]))
        assert pruned._sized("predict", n)[0].batch < pruned.plan_.batch
        assert latency(pruned, n) <= 1.1 * latency(dense, n)


def test_request_sized_plan_with_its_own_keys(digits, tmp_path, monkeypatch):
    """A packing predicted faster with other CKKS parameters gets a key set of its own."""
    import pickle

    from skhepex.he import requests

    monkeypatch.setattr(requests, "OWN_KEYS_GAIN", 0.5)     # favour own parameters
    X_train, X_test, y_train, _ = digits
    # three hidden layers: the 1x1 throughput packing has no mask level, the tiles sized
    # for one sample need one more (the last stage, a "WT" one, cannot be gathered)
    est = _fit(MLPClassifier(hidden_layer_sizes=(16, 16, 16), max_iter=10, random_state=0),
               X_train, y_train)
    he = HEPredictor(est, prefit=True).fit()
    plan = he._sized("predict", 1)[0]
    assert plan.params != he.params_            # deeper / larger ring than the fitted one
    want = est.decision_function(X_test[:3])
    np.testing.assert_allclose(he.decision_function(X_test[:1]), want[:1], atol=1e-3)
    np.testing.assert_allclose(he.decision_function(X_test[:3]), want, atol=1e-3)
    assert len(he._clients) == 1 and he._client_for(plan) is not he.client_
    server = he._server_for(plan, "predict")
    assert not server.context.has_secret_key()
    # the extra keys are never pickled nor saved; the saved client is the fitted one
    clone = pickle.loads(pickle.dumps(he))
    assert clone.client_ is None and clone._clients == {}
    clone.load_client(he.save_client(tmp_path / "keys.bin"))
    np.testing.assert_array_equal(clone.predict(X_test[:1]), est.predict(X_test[:1]))
    np.testing.assert_array_equal(clone.decrypt(he.server_.evaluate(he.encrypt(X_test[:3]))
                                                ).argmax(axis=1), est.predict(X_test[:3]))
