"""Regression tests of the redesign: no state changes in predict, re-entrant server,
prefit copies, simulate mode without SEAL, the network protocol."""
import threading
import warnings

import numpy as np
import pytest
from he_stages import fit_digits_mlp
from sklearn.exceptions import ConvergenceWarning

from skhepex import MLPClassifier, tile_report
from skhepex.he import HEPredictor, ServerModel

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def clf(digits):
    return fit_digits_mlp(digits, (16,), 20)


def _state(est):
    return {k: v for k, v in vars(est).items() if k.endswith("_") and not k.startswith("_")}


def test_tile_report_of_fitted_predictor_uses_fitted_tile_shape(clf):
    # before: "tile_shape must be a pair of positive ints; got ('a', 'u', 't', 'o')"
    he = HEPredictor(clf, prefit=True, mode="simulate").fit()
    rep = tile_report(he)
    assert rep.tile_shape == he.tile_shape_
    assert rep.n_tiles == tile_report(clf, he.tile_shape_).n_tiles
    # an explicit shape on an unfitted predictor is the shape it will pack with
    assert tile_report(HEPredictor(clf, prefit=True, tile_shape=(4, 8))).tile_shape == (4, 8)


def test_ciphertext_scorer_on_fitted_predictor(clf, digits):
    from skhepex import ciphertext_scorer
    he = HEPredictor(clf, prefit=True, tile_shape=(4, 4), mode="simulate").fit()
    assert ciphertext_scorer(he) == -tile_report(clf, (4, 4)).n_nonzero_tiles


def test_prefit_copies_the_estimator(clf, digits):
    import copy
    X_train, X_test, y_train, _ = digits
    clf = copy.deepcopy(clf)
    he = HEPredictor(clf, prefit=True, tile_shape=(8, 8), mode="simulate").fit()
    expected = he.decision_function(X_test[:20])
    assert he.estimator_ is not clf
    other = MLPClassifier(hidden_layer_sizes=(16,), max_iter=2, random_state=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf2 = other.fit(X_train, y_train)
    clf.network_.weight_layers[0].W[...] = clf2.network_.weight_layers[0].W * 0  # user edits
    np.testing.assert_allclose(he.decision_function(X_test[:20]), expected, atol=1e-9)


def test_prefit_accepts_frozen_estimator(digits):
    from sklearn.frozen import FrozenEstimator
    X_train, X_test, y_train, _ = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        net = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(
            X_train, y_train)
    he = HEPredictor(FrozenEstimator(net), prefit=True, tile_shape=(8, 8),
                     mode="simulate").fit()
    np.testing.assert_array_equal(he.predict(X_test[:10]), net.predict(X_test[:10]))


def test_predict_changes_no_fitted_attribute(clf, digits):
    _, X_test, _, _ = digits
    he = HEPredictor(clf, prefit=True, tile_shape=(8, 8)).fit()
    before = {k: (repr(v) if not hasattr(v, "__array__") else np.asarray(v).tobytes())
              for k, v in _state(he).items()}
    report_text = str(he.report_)
    server_dict = dict(vars(he.server_))
    he.predict(X_test[:10])
    he.predict_proba(X_test[:3])
    after = {k: (repr(v) if not hasattr(v, "__array__") else np.asarray(v).tobytes())
             for k, v in _state(he).items()}
    assert before == after
    assert str(he.report_) == report_text and he.report_.measured is None
    assert set(vars(he.server_)) == set(server_dict)      # nothing added per call
    rep = he.measure(X_test[:10])
    assert rep.measured["n_samples"] == 10 and he.report_.measured is None


def test_one_server_two_threads(clf, digits):
    _, X_test, _, _ = digits
    he = HEPredictor(clf, prefit=True, tile_shape=(8, 8)).fit()
    server = ServerModel.load(he.server_.serialize())
    parts = [X_test[:40], X_test[40:70]]
    batches = [he.encrypt(X) for X in parts]
    results = [None, None]

    def work(i):
        for _ in range(2):
            results[i] = server.evaluate(batches[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for X, res in zip(parts, results):
        np.testing.assert_allclose(he.decrypt(res), clf.decision_function(X), atol=1e-3)
        assert res.stats["n_batches"] == 1


def test_two_predictors_side_by_side(clf, digits):
    _, X_test, _, _ = digits
    a = HEPredictor(clf, prefit=True, tile_shape=(8, 8)).fit()
    b = HEPredictor(clf, prefit=True, tile_shape=(4, 8)).fit()
    X = X_test[:16]
    np.testing.assert_array_equal(a.predict(X), clf.predict(X))
    np.testing.assert_array_equal(b.predict(X), clf.predict(X))
    with pytest.raises(ValueError, match="another"):   # a's batch on b's server
        b.server_.evaluate(a.encrypt(X))


def test_simulate_mode_needs_no_seal(clf, digits, monkeypatch):
    from skhepex.he import costs

    def boom(*args, **kwargs):
        raise AssertionError("simulate mode must not time SEAL")

    monkeypatch.setattr(costs, "measure_unit_costs", boom)
    monkeypatch.setattr(costs, "_MEASURED", {})
    _, X_test, _, _ = digits
    he = HEPredictor(clf, prefit=True, mode="simulate").fit()      # auto tile shape too
    assert he.client_ is None and he.server_ is None
    assert he.report_.unit_costs_source == "tabulated"
    assert he.report_.predicted_seconds_per_sample > 0
    np.testing.assert_array_equal(he.predict(X_test[:10]), clf.predict(X_test[:10]))


def test_foreign_object_gets_one_clear_type_error():
    from sklearn.neural_network import MLPClassifier as SkMLP
    with pytest.raises(TypeError, match="skhepex.MLPClassifier"):
        HEPredictor(SkMLP(), prefit=True).fit()
