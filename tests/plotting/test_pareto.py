"""Tests of pareto_front and ParetoDisplay (Agg backend), and of the missing-matplotlib error."""

import json
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from skhepex import MLPClassifier  # noqa: E402
from skhepex.plotting import ParetoDisplay, TileMapDisplay, pareto_front  # noqa: E402


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

    from skhepex.pruning import HEPEx, TilePruner, fewest_ciphertexts_within, hepex_scoring

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
    assert disp.chosen_line_ is None and disp.budget_line_ is None   # refit=False
    assert sorted(a.get_text() for a in disp.annotations_) == ["tile_sparsity=0.25",
                                                               "tile_sparsity=0.75"]
    # with the refit rule: the refitted candidate is starred, its budget drawn
    search.set_params(refit=fewest_ciphertexts_within(0.1)).fit(X, y)
    disp = ParetoDisplay.from_cv_results(search)
    scores = search.cv_results_["mean_test_score"]
    cx, cy = disp.chosen_line_.get_data()
    assert cy[0] == scores[search.best_index_]
    assert cx[0] == -search.cv_results_["mean_test_ciphertexts"][search.best_index_]
    assert disp.budget_line_.get_ydata()[0] == pytest.approx(scores.max() * 0.9)
    labels = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert "chosen" in labels and "budget: 10% below the best" in labels
    disp = ParetoDisplay.from_cv_results(search, chosen=None, tolerance=None)
    assert disp.chosen_line_ is None and disp.budget_line_ is None


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


def test_pareto_from_json_marks_selected_budget_and_settings():
    records = [
        {"variant": "dense", "n_ciphertexts": 160, "val_score": 0.970, "selected": True},
        {"variant": "P", "sparsity": 0.9, "tile_sparsity": 0.0, "n_ciphertexts": 159,
         "val_score": 0.968, "selected": True},
        {"variant": "P", "sparsity": 0.99, "tile_sparsity": 0.0, "n_ciphertexts": 60,
         "val_score": 0.45, "selected": False},                    # collapsed
        {"variant": "Hunter", "sparsity": 0.0, "tile_sparsity": 0.85, "n_ciphertexts": 24,
         "val_score": 0.955, "selected": True},
        {"variant": "PPTE", "sparsity": 0.97, "tile_sparsity": 0.9, "n_ciphertexts": 16,
         "val_score": 0.962, "selected": True},
    ]
    disp = ParetoDisplay.from_json(records, score_key="val_score", tolerance=0.025)
    budget = 0.970 - 0.025 * 0.970
    assert disp.budget_line_.get_ydata()[0] == pytest.approx(budget)
    cx, _ = disp.chosen_line_.get_data()
    assert sorted(cx) == [16, 24, 159, 160]
    texts = [a.get_text() for a in disp.annotations_]
    assert "s=0.97 t=0.9" in texts and "t=0.85" in texts and "s=0.9" in texts
    # the collapsed candidate is drawn on the lower edge, labelled with its score,
    # and the Hunter/PPTE difference (0.007) stays readable
    np.testing.assert_array_equal(disp.clipped_, [2])
    assert "s=0.99: 0.45" in texts
    low, high = disp.ax_.get_ylim()
    assert 0.45 < low < budget and (0.962 - 0.955) / (high - low) > 0.05
    legend = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert "budget: 2.5% below dense" in legend and "chosen" in legend
    # clip=None shows everything
    disp = ParetoDisplay.from_json(records, score_key="val_score", clip=None)
    assert disp.clipped_.size == 0 and disp.ax_.get_ylim()[0] < 0.45


def test_pareto_clip_without_budget_and_explicit():
    scores = [0.97, 0.965, 0.96, 0.955, 0.95, 0.45]
    disp = ParetoDisplay([100, 80, 60, 40, 20, 10], scores).plot()
    np.testing.assert_array_equal(disp.clipped_, [5])           # far below the others
    assert disp.ax_.get_ylim()[0] > 0.45
    disp = ParetoDisplay([100, 80, 60, 40, 20, 10], scores, chosen=[5]).plot()
    assert disp.clipped_.size == 0                               # a chosen point stays in
    disp = ParetoDisplay([3, 2, 1], [0.9, 0.8, 0.7]).plot(clip=0.75, annotate=False)
    np.testing.assert_array_equal(disp.clipped_, [2])
    assert disp.ax_.get_ylim()[0] == 0.75 and disp.annotations_ == []
    with pytest.raises(ValueError, match="clip"):
        ParetoDisplay([1], [0.5]).plot(clip="full")
    with pytest.raises(ValueError, match="labels has"):
        ParetoDisplay([1, 2], [0.5, 0.6], labels=["a"]).plot()
    with pytest.raises(ValueError, match="chosen index"):
        ParetoDisplay([1, 2], [0.5, 0.6], chosen=[2]).plot()


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
