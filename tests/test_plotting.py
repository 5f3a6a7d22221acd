"""Tests of the plotting displays (Agg backend, tiny networks)."""

import json
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402

from skhepex import MLPClassifier  # noqa: E402
from skhepex.plotting import ParetoDisplay, TileMapDisplay, pareto_front  # noqa: E402
from skhepex.tiling import TileLayout  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16, y[:300]


def _sparse_net(data, seed=0, sparsity=0.7):
    """A fitted 64-24-10 MLP with random weights zeroed (so some tiles are empty)."""
    X, y = data
    clf = MLPClassifier(hidden_layer_sizes=(24,), max_iter=3, random_state=seed).fit(X, y)
    rng = np.random.RandomState(seed)
    for layer in clf.network_.weight_layers:
        layer.W[rng.rand(*layer.W.shape) < sparsity] = 0.0
    return clf


@pytest.fixture(scope="module")
def net(data):
    return _sparse_net(data)


def _n_drawn_kept(mesh):
    arr = mesh.get_array()
    return int(np.sum(np.ma.filled(arr, 0) > 0))


# ------------------------------------------------------------------ tile map
@pytest.mark.parametrize("tile_shape", [(8, 8), (4, 16), (16, 4)])
def test_tile_map_counts_match_layout(net, tile_shape):
    layout = TileLayout(net, tile_shape)
    disp = TileMapDisplay.from_estimator(net, tile_shape=tile_shape)
    assert disp.ax_.shape == (1, len(layout.layers))
    assert disp.figure_ is disp.ax_[0, 0].figure
    assert disp.axes_ is disp.ax_
    for j, lt in enumerate(layout.layers):
        mesh = disp.meshes_[0, j]
        assert mesh.get_array().size == lt.n_tiles
        assert _n_drawn_kept(mesh) == lt.n_nonzero_tiles
        title = disp.ax_[0, j].get_title()
        assert lt.name in title and f"({lt.orientation})" in title
        assert f"{lt.n_nonzero_tiles}/{lt.n_tiles}" in title
        # drawn in (out, in) matrix coordinates, rows downwards
        assert disp.ax_[0, j].get_xlim() == (0, lt.matrix_shape[1])
        assert disp.ax_[0, j].get_ylim() == (lt.matrix_shape[0], 0)
    assert sum(_n_drawn_kept(m) for m in disp.meshes_.ravel()) == layout.n_nonzero_tiles
    assert disp.ax_[0, 0].get_xlabel() == "in"


def test_tile_map_orientations_alternate(net):
    disp = TileMapDisplay.from_estimator(net, tile_shape=(4, 16))
    t0, t1 = (a.get_title() for a in disp.ax_[0])
    assert "(W)" in t0 and "(WT)" in t1


def test_tile_map_unwraps_pipeline(data, net):
    X, y = data
    pipe = make_pipeline(MinMaxScaler(), MLPClassifier(hidden_layer_sizes=(8,), max_iter=2,
                                                       random_state=0)).fit(X, y)
    disp = TileMapDisplay.from_estimator(pipe, tile_shape=(8, 8), estimator_name="pipe")
    assert disp.ax_.shape == (1, 2)
    assert disp.ax_[0, 0].get_ylabel().startswith("pipe")


def test_tile_map_norm_colours(net):
    layout = TileLayout(net, (8, 8))
    disp = TileMapDisplay.from_estimator(net, tile_shape=(8, 8), color="norm")
    assert disp.colorbar_ is not None
    for j, lt in enumerate(layout.layers):
        arr = disp.meshes_[0, j].get_array()
        assert np.ma.count(arr) == lt.n_nonzero_tiles    # empty tiles are masked
        M = layout.matrices()[j][0]
        p, q = np.argwhere(lt.tile_mask)[0]
        rs, cs = lt.tile_slices(p, q)
        np.testing.assert_allclose(arr.reshape(lt.grid)[p, q], np.linalg.norm(M[rs, cs]))


def test_tile_map_from_estimators_grid(data, net):
    other = _sparse_net(data, seed=1, sparsity=0.9)
    disp = TileMapDisplay.from_estimators({"a": net, "b": other}, tile_shape=(8, 8))
    assert disp.ax_.shape == (2, 2)
    assert disp.estimator_names == ["a", "b"]
    assert disp.ax_[1, 0].get_ylabel().startswith("b")
    for i, est in enumerate([net, other]):
        layout = TileLayout(est, (8, 8))
        drawn = sum(_n_drawn_kept(m) for m in disp.meshes_[i])
        assert drawn == layout.n_nonzero_tiles


def test_tile_map_compose_on_given_axes(data, net):
    other = _sparse_net(data, seed=2)
    fig, axes = plt.subplots(2, 2)
    d1 = TileMapDisplay.from_estimator(net, tile_shape=(8, 8), ax=axes[0])
    d2 = TileMapDisplay.from_estimator(other, tile_shape=(8, 8), ax=axes[1])
    assert d1.figure_ is fig and d2.figure_ is fig
    assert d2.ax_[0, 1] is axes[1, 1]
    with pytest.raises(ValueError, match="ax must hold 2 Axes"):
        TileMapDisplay.from_estimator(net, tile_shape=(8, 8), ax=axes)


def test_tile_map_errors(net):
    with pytest.raises(ValueError, match="color must be"):
        TileMapDisplay.from_estimator(net, color="weights")
    disp = TileMapDisplay(TileLayout(net, (8, 8)).layers)
    with pytest.raises(ValueError, match="tile_values"):
        disp.plot(color="norm")
    assert disp.plot() is disp


def test_tile_map_ragged_rows(data, net):
    X, y = data
    deep = MLPClassifier(hidden_layer_sizes=(8, 8), max_iter=2, random_state=0).fit(X, y)
    disp = TileMapDisplay.from_estimators([("shallow", net), ("deep", deep)], (8, 8))
    assert disp.ax_.shape == (2, 3)
    assert not disp.ax_[0, 2].get_visible()
    assert disp.meshes_[0, 2] is None


# -------------------------------------------------------------------- pareto
def test_pareto_front_hand_example():
    cts = [100, 60, 40, 60, 20, 40, np.nan]
    scores = [0.97, 0.96, 0.90, 0.95, 0.80, 0.85, 0.99]
    # (60, .95) is dominated by (60, .96); (40, .85) by (40, .90); NaN is ignored
    np.testing.assert_array_equal(pareto_front(cts, scores), [4, 2, 1, 0])
    # duplicates of an optimal point are all on the front
    np.testing.assert_array_equal(pareto_front([10, 10, 20], [0.5, 0.5, 0.4]), [0, 1])
    assert pareto_front([], []).size == 0
    with pytest.raises(ValueError, match="differ in length"):
        pareto_front([1, 2], [1.0])


def test_pareto_from_cv_results_negative_counts():
    cv_results = {
        "mean_test_score": np.array([0.97, 0.96, 0.90, 0.95, 0.80, 0.85]),
        "mean_test_ciphertexts": -np.array([100.0, 60, 40, 60, 20, 40]),
        "param_hepex__permute": np.ma.MaskedArray(
            np.array(["passthrough", "Permuter()", "Permuter()", "passthrough",
                      "Permuter()", "passthrough"], dtype=object), mask=False),
    }
    disp = ParetoDisplay.from_cv_results(cv_results, variant_param="hepex__permute")
    np.testing.assert_array_equal(disp.front_, [4, 2, 1, 0])
    assert set(disp.lines_) == {"passthrough", "Permuter()"}
    x, y = disp.lines_["Permuter()"].get_data()
    np.testing.assert_array_equal(x, [20, 40, 60])          # abs, sorted by ciphertexts
    np.testing.assert_array_equal(y, [0.80, 0.90, 0.96])
    fx, fy = disp.front_line_.get_data()
    np.testing.assert_array_equal(fx, [20, 40, 60, 100])
    assert disp.ax_.get_xlabel().startswith("weight ciphertexts")
    assert disp.ax_.get_ylabel() == "mean_test_score"
    assert disp.figure_ is disp.ax_.figure
    labels = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert "Pareto front" in labels and "passthrough" in labels
    # the same with the "param_" prefix, no front
    disp = ParetoDisplay.from_cv_results(cv_results, variant_param="param_hepex__permute",
                                         front=False, score_name="accuracy")
    assert disp.front_line_ is None and disp.ax_.get_ylabel() == "accuracy"


def test_pareto_from_cv_results_errors():
    cv = {"mean_test_score": [1.0], "mean_test_ciphertexts": [-3.0], "param_a": [1]}
    with pytest.raises(KeyError, match="hepex_scoring"):
        ParetoDisplay.from_cv_results(cv, score_key="mean_test_accuracy")
    with pytest.raises(KeyError, match="not a searched parameter"):
        ParetoDisplay.from_cv_results(cv, variant_param="b")


def test_pareto_from_real_grid_search(data):
    from sklearn.model_selection import GridSearchCV

    from skhepex.pruning import HEPEx, TilePruner, hepex_scoring

    X, y = data
    hepex = HEPEx(MLPClassifier(hidden_layer_sizes=(16,), max_iter=3, random_state=0),
                  steps=[("tiles", TilePruner(n_steps=1, fine_tune_iter=0))],
                  tile_shape=(8, 8))
    search = GridSearchCV(hepex, {"tiles__tile_sparsity": [0.25, 0.75]}, cv=2,
                          scoring=hepex_scoring(), refit=False).fit(X, y)
    disp = ParetoDisplay.from_cv_results(search)
    x, _ = disp.lines_["all"].get_data()
    assert np.all(x > 0)
    np.testing.assert_array_equal(
        np.sort(x), np.sort(-search.cv_results_["mean_test_ciphertexts"]))


def test_pareto_from_json_file(tmp_path):
    records = [
        {"task": "mlp", "variant": "dense", "n_ciphertexts": 40, "score": 0.97,
         "metric": "accuracy"},
        {"task": "mlp", "variant": "P", "n_ciphertexts": 38, "score": 0.965,
         "metric": "accuracy"},
        {"task": "mlp", "variant": "Hunter", "n_nonzero_tiles": 20, "score": 0.93,
         "metric": "accuracy"},
        {"task": "mlp", "variant": "PPTE", "n_ciphertexts": 18, "score": 0.96,
         "metric": "accuracy"},
        {"task": "ae", "variant": "PPTE", "n_ciphertexts": 30, "score": -0.01},
        {"task": "mlp", "variant": "broken", "score": 0.5},      # skipped: no count
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"meta": {"machine": "x"}, "records": records}))
    with pytest.raises(ValueError, match="several tasks"):
        ParetoDisplay.from_json(path)
    disp = ParetoDisplay.from_json(str(path), task="mlp")
    assert list(disp.lines_) == ["dense", "P", "Hunter", "PPTE"]
    assert disp.ax_.get_ylabel() == "accuracy"
    front_cts = sorted(np.asarray(disp.n_ciphertexts)[disp.front_])
    assert front_cts == [18, 38, 40]                       # Hunter is dominated by PPTE
    with pytest.raises(ValueError, match="No record has task"):
        ParetoDisplay.from_json(path, task="cnn")


def test_pareto_from_json_tolerant_layouts():
    by_variant = {"P": {"n_ciphertexts": -10, "score": 0.9},
                  "PPTE": [{"ciphertexts": 5, "score": 0.91}]}
    disp = ParetoDisplay.from_json(by_variant)
    assert set(disp.lines_) == {"P", "PPTE"}
    np.testing.assert_array_equal(disp.front_, [1])
    disp = ParetoDisplay.from_json([{"n_ciphertexts": 3, "loss_score": 0.2}],
                                   score_key="loss_score")
    assert disp.ax_.get_ylabel() == "loss_score" and list(disp.lines_) == ["all"]
    with pytest.raises(ValueError, match="No usable record"):
        ParetoDisplay.from_json([{"variant": "x"}])
    with pytest.raises(ValueError, match="list of records"):
        ParetoDisplay.from_json(42)


def test_pareto_plot_on_given_axes():
    fig, ax = plt.subplots()
    disp = ParetoDisplay([3, 1], [0.5, 0.4], variants=["a", "b"]).plot(ax=ax, annotate_front=True)
    assert disp.ax_ is ax and disp.figure_ is fig
    with pytest.raises(ValueError, match="variants has"):
        ParetoDisplay([3, 1], [0.5, 0.4], variants=["a"]).plot()


# ------------------------------------------------------------ no matplotlib
def test_missing_matplotlib_error(monkeypatch, net):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r'pip install "skhepex\[plot\]"'):
        TileMapDisplay.from_estimator(net)
    with pytest.raises(ImportError, match="optional"):
        ParetoDisplay([1], [0.5]).plot()
    # computing without plotting needs no matplotlib
    assert pareto_front([1], [0.5]).tolist() == [0]
