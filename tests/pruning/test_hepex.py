import pickle

import numpy as np
import pytest
from joblib import Memory
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skhepex import Autoencoder, CNNClassifier, MLPClassifier, tile_report
from skhepex.pruning import (Expander, HEPEx, MagnitudePruner, Permuter, TilePruner,
                             ciphertext_scorer, fewest_ciphertexts_within, hepex_scoring)
from skhepex.pruning import stages as stages_module

FT = 2


def _steps():
    return [("prune", MagnitudePruner(sparsity=0.8, n_steps=2, fine_tune_iter=FT)),
            ("permute", Permuter(max_iter=2, random_state=0)),
            ("tiles", TilePruner(tile_sparsity=0.5, n_steps=1, fine_tune_iter=FT)),
            ("expand", Expander(fine_tune_iter=FT))]


def _hepex(**kw):
    return HEPEx(MLPClassifier(hidden_layer_sizes=(32,), max_iter=10, random_state=0),
                 _steps(), tile_shape=(8, 8), **kw)


def test_fit_attributes_and_delegation(digits):
    X, y = digits
    h = _hepex().fit(X, y)
    assert [r["name"] for r in h.history_] == ["dense", "prune", "permute", "tiles", "expand"]
    assert h.n_ciphertexts_ == h.history_[-1]["n_nonzero_tiles"]
    assert h.n_ciphertexts_dense_ == h.history_[0]["n_nonzero_tiles"] == 40
    assert h.n_ciphertexts_ < h.n_ciphertexts_dense_
    assert h.n_ciphertexts_ == tile_report(h).n_nonzero_tiles
    assert tile_report(make_pipeline(h)).tile_shape == (8, 8)
    np.testing.assert_array_equal(h.predict(X), h.estimator_.predict(X))
    np.testing.assert_allclose(h.predict_proba(X), h.estimator_.predict_proba(X))
    assert h.transform(X).shape == (len(X), 32)
    assert h.score(X, y) == h.estimator_.score(X, y)
    np.testing.assert_array_equal(h.classes_, np.arange(10))
    assert h.n_features_in_ == 64
    # the steps given are never fitted in place
    for (_, s), (_, f) in zip(h.steps, h.steps_):
        assert not hasattr(s, "n_nonzero_tiles_") and hasattr(f, "n_nonzero_tiles_")


def test_params_roundtrip():
    h = _hepex()
    p = h.get_params()
    assert p["tiles__tile_sparsity"] == 0.5
    assert p["estimator__hidden_layer_sizes"] == (32,)
    h.set_params(tiles__tile_sparsity=0.7, permute="passthrough", estimator__max_iter=3)
    assert h.get_params()["tiles__tile_sparsity"] == 0.7
    assert h.get_params()["permute"] == "passthrough"
    assert h.estimator.max_iter == 3
    c = clone(h)
    assert c.get_params()["tiles__tile_sparsity"] == 0.7
    assert c.steps[2][1] is not h.steps[2][1]


@pytest.mark.parametrize("mask", range(16))
def test_every_passthrough_combination(digits, mask):
    X, y = digits
    steps = [(n, s if mask >> i & 1 else "passthrough") for i, (n, s) in enumerate(_steps())]
    if mask == 0:
        steps[0] = ("prune", None)
    h = HEPEx(MLPClassifier(hidden_layer_sizes=(16,), max_iter=3, random_state=0), steps,
              tile_shape=(4, 8)).fit(X, y)
    assert len(h.history_) == 1 + bin(mask).count("1")
    assert h.predict(X).shape == (len(X),)
    if mask == 0:
        assert h.n_ciphertexts_ == h.n_ciphertexts_dense_


def test_autoencoder_and_cnn(digits):
    X, y = digits
    ae = HEPEx(Autoencoder(hidden_layer_sizes=(32, 16, 32), max_iter=3, random_state=0),
               _steps()).fit(X)
    assert ae.inverse_transform(ae.transform(X)).shape == X.shape
    assert np.isfinite(ae.score(X))
    cnn = HEPEx(CNNClassifier(conv_channels=(4, 8), max_iter=1, random_state=0),
                _steps()).fit(X, y)
    assert cnn.n_ciphertexts_ <= cnn.n_ciphertexts_dense_
    assert not hasattr(ae, "predict_proba") and hasattr(cnn, "predict_proba")


def test_bad_steps(digits):
    X, y = digits
    with pytest.raises(TypeError, match="prune"):
        HEPEx(MLPClassifier(max_iter=1), [("a", MinMaxScaler())]).fit(X, y)
    with pytest.raises(ValueError, match="conflict"):
        HEPEx(MLPClassifier(max_iter=1), [("memory", Expander())]).fit(X, y)
    with pytest.raises(ValueError):
        HEPEx(MLPClassifier(max_iter=1), [("a", Expander()), ("a", Expander())]).fit(X, y)


def test_pickle(digits):
    X, y = digits
    h = _hepex().fit(X, y)
    h2 = pickle.loads(pickle.dumps(h))
    np.testing.assert_array_equal(h2.predict_proba(X), h.predict_proba(X))
    assert h2.n_ciphertexts_ == h.n_ciphertexts_


def test_memory_caches_prefixes(digits, tmp_path):
    X, y = digits
    memory = Memory(tmp_path, verbose=0)
    n0 = stages_module.N_DENSE_FITS
    a = _hepex(memory=memory).fit(X, y)
    assert stages_module.N_DENSE_FITS == n0 + 1
    b = _hepex(memory=memory).set_params(tiles__tile_sparsity=0.7).fit(X, y)
    assert stages_module.N_DENSE_FITS == n0 + 1
    # a path works too (joblib stores str and Path locations differently)
    _hepex(memory=str(tmp_path / "c")).fit(X, y)
    _hepex(memory=str(tmp_path / "c")).set_params(prune__sparsity=0.5).fit(X, y)
    assert stages_module.N_DENSE_FITS == n0 + 2
    assert b.n_ciphertexts_ <= a.n_ciphertexts_
    c = _hepex(memory=memory).fit(X, y)
    np.testing.assert_array_equal(c.predict_proba(X), a.predict_proba(X))
    _hepex(memory=memory).set_params(estimator__alpha=1e-3).fit(X, y)
    assert stages_module.N_DENSE_FITS == n0 + 3


def test_selection_rule():
    rule = fewest_ciphertexts_within(0.025)
    res = {"mean_test_score": np.array([0.98, 0.96, 0.955, 0.90, np.nan]),
           "mean_test_ciphertexts": np.array([-400, -120, -120, -40, -10])}
    assert rule(res) == 1                      # 0.955 < 0.98 * 0.975; tie 120 -> higher score
    assert fewest_ciphertexts_within(0.1)(res) == 3
    assert fewest_ciphertexts_within(0.03, relative=False)(res) == 1
    assert fewest_ciphertexts_within(0.0)(res) == 0
    assert "0.025" in repr(rule)


@pytest.mark.parametrize("use_memory", [True, False])
def test_grid_search_in_pipeline(digits, tmp_path, use_memory):
    X, y = digits
    X = X[:300] * 16
    y = y[:300]
    model = make_pipeline(MinMaxScaler(),
                          _hepex(memory=Memory(tmp_path, verbose=0) if use_memory else None))
    grid = {"hepex__tiles__tile_sparsity": [0.25, 0.75],
            "hepex__permute": [Permuter(max_iter=2, random_state=0), "passthrough"]}
    n0 = stages_module.N_DENSE_FITS
    search = GridSearchCV(model, grid, cv=2, scoring=hepex_scoring(),
                          refit=fewest_ciphertexts_within(0.05)).fit(X, y)
    n_fits = stages_module.N_DENSE_FITS - n0
    # 2 folds + refit on the full data when cached; else once per candidate and fold
    assert n_fits == (3 if use_memory else 4 * 2 + 1)
    res = search.cv_results_
    best = search.best_index_
    ok = res["mean_test_score"] >= res["mean_test_score"].max() * 0.95
    assert ok[best]
    assert res["mean_test_ciphertexts"][best] == res["mean_test_ciphertexts"][ok].max()
    assert -ciphertext_scorer(search.best_estimator_) == \
        search.best_estimator_[-1].n_ciphertexts_
    assert search.predict(X).shape == (len(X),)


@parametrize_with_checks(
    [HEPEx(MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, learning_rate_init=1e-2,
                         random_state=0),
           [("prune", MagnitudePruner(sparsity=0.5, n_steps=1, fine_tune_iter=5)),
            ("permute", Permuter(max_iter=1, n_init=1, random_state=0)),
            ("tiles", TilePruner(tile_sparsity=0.25, n_steps=1, fine_tune_iter=5)),
            ("expand", Expander(fine_tune_iter=5))],
           tile_shape=(4, 4))],
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_hepex_rejects_foreign_estimator_and_bad_tiles():
    import numpy as np
    import pytest
    from sklearn.linear_model import LogisticRegression

    from skhepex import HEPEx, MLPClassifier, TilePruner

    X = np.random.RandomState(0).rand(40, 8)
    y = np.arange(40) % 2
    with pytest.raises(TypeError, match="skhepex network"):
        HEPEx(LogisticRegression(), steps=[("tiles", TilePruner())]).fit(X, y)
    with pytest.raises(ValueError, match="powers of two"):
        HEPEx(MLPClassifier(hidden_layer_sizes=(4,), max_iter=2),
              steps=[("tiles", TilePruner())], tile_shape=(3, 8)).fit(X, y)


def test_auto_tile_shape_is_chosen_for_the_request_size(digits):
    """``tile_shape="auto"`` prunes at the shape the cost model picks for the deployment."""
    from skhepex.estimators import get_tile_shape
    from skhepex.he import HEPredictor, choose_tile_shape

    X, y = digits
    shapes = {}
    for size in (1, "auto"):
        h = HEPEx(MLPClassifier(hidden_layer_sizes=(32,), max_iter=10, random_state=0),
                  [("tiles", TilePruner(tile_sparsity=0.5, n_steps=1, fine_tune_iter=FT))],
                  tile_shape="auto", request_size=size).fit(X, y)
        want = choose_tile_shape(h.dense_estimator_, batch_size=1 if size == 1 else "auto",
                                 measure=False)[0]
        assert h.tile_shape_ == tuple(want)
        assert get_tile_shape(h) == h.tile_shape_
        report = tile_report(h)
        assert report.tile_shape == h.tile_shape_
        assert h.n_ciphertexts_ == report.n_nonzero_tiles <= h.n_ciphertexts_dense_
        if size == "auto":   # 1x1 tiles: half of them go (one sample: one tile per layer)
            assert h.n_ciphertexts_ < h.n_ciphertexts_dense_
        assert h.history_[0]["n_tiles"] == report.n_tiles
        assert HEPredictor(h, prefit=True, mode="simulate").fit().tile_shape_ == h.tile_shape_
        shapes[size] = h.tile_shape_
    # one sample fills a ciphertext with weights; throughput packs one sample per slot
    assert shapes["auto"] == (1, 1)
    assert shapes[1][0] * shapes[1][1] > 1
    unfitted = HEPEx(MLPClassifier(), [("tiles", TilePruner())], tile_shape="auto")
    assert get_tile_shape(unfitted) is None


@pytest.mark.parametrize("bad", [dict(request_size=0), dict(request_size="big"),
                                 dict(tile_shape="fast")])
def test_auto_tile_shape_rejects_bad_parameters(digits, bad):
    X, y = digits
    with pytest.raises(ValueError):
        HEPEx(MLPClassifier(hidden_layer_sizes=(4,), max_iter=2),
              [("tiles", TilePruner())], **bad).fit(X, y)


def test_search_chooses_the_budget_on_a_validation_split(digits):
    """Fewest ciphertexts within tolerance on the held-out part; then refit on all."""
    from sklearn.model_selection import train_test_split

    X, y = digits
    values = [0.25, 0.5, 0.9]
    h = HEPEx(MLPClassifier(hidden_layer_sizes=(32,), max_iter=30, random_state=0),
              [("tiles", TilePruner(n_steps=1, fine_tune_iter=10, random_state=0))],
              tile_shape=(8, 8), search={"tiles__tile_sparsity": values}, tolerance=0.05,
              random_state=0).fit(X, y)
    res = h.search_results_
    assert [r["value"] for r in res] == values
    assert res[0]["n_ciphertexts"] > res[1]["n_ciphertexts"] > res[2]["n_ciphertexts"]
    within = [r for r in res if r["within"]]
    assert 0 < len(within) < len(res)       # 90% of the tiles is too much here
    assert h.best_params_ == {"tiles__tile_sparsity": min(
        within, key=lambda r: r["n_ciphertexts"])["value"]}
    for r in res:
        assert r["within"] == (r["val_score"] >= r["dense_val_score"] * (1 - 0.05))
    # the steps were refitted on all the data with the chosen value
    assert h.steps_[0][1].tile_sparsity == h.best_params_["tiles__tile_sparsity"]
    assert h.steps[0][1].tile_sparsity == 0.5                       # never mutated
    assert h.n_ciphertexts_ == tile_report(h).n_nonzero_tiles
    # the validation split is a stratified 20% of X, nothing else
    X_fit, X_val, y_fit, y_val = train_test_split(X, y, test_size=0.2, random_state=0,
                                                  stratify=y)
    dense = clone(h.estimator).fit(X_fit, y_fit)
    assert res[0]["dense_val_score"] == pytest.approx(dense.score(X_val, y_val))
    h.set_params(search=None).fit(X, y)                 # no stale search results
    assert not hasattr(h, "best_params_") and not hasattr(h, "search_results_")


def test_search_autoencoder_and_warning(digits):
    X, _ = digits
    h = HEPEx(Autoencoder(hidden_layer_sizes=(16,), max_iter=10, random_state=0),
              [("tiles", TilePruner(n_steps=1, fine_tune_iter=FT, random_state=0))],
              tile_shape=(8, 8), search={"tiles__tile_sparsity": [0.95, 0.97]}, tolerance=0.0,
              random_state=0)
    with pytest.warns(UserWarning, match="no value of tiles__tile_sparsity"):
        h.fit(X)
    assert h.best_params_["tiles__tile_sparsity"] in (0.95, 0.97)


@pytest.mark.parametrize("search", [{"tiles__tile_sparsity": []},
                                    {"tiles__tile_sparsity": "0.5"},
                                    {"off__tile_sparsity": [0.5]},
                                    {"nope__tile_sparsity": [0.5]},
                                    {"tiles": [0.5]},
                                    {"tiles__tile_sparsity": [0.5], "tiles__n_steps": [1]}])
def test_search_rejects_bad_keys(digits, search):
    X, y = digits
    with pytest.raises(ValueError, match="search"):
        HEPEx(MLPClassifier(hidden_layer_sizes=(4,), max_iter=2),
              [("tiles", TilePruner()), ("off", "passthrough")], search=search).fit(X, y)
