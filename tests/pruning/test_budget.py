"""Budget-aware permutation, per-layer floor, connectivity, honest selection."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from skhepex import Autoencoder, CNNClassifier, MLPClassifier, tile_report
from skhepex.experiments.variants import ABLATION_STEPS, build_steps, n_rounds
from skhepex.pruning import HEPEx, Permuter, TilePruner
from skhepex.pruning.budget import (budget_permutation, importance_matrices, keep_tiles,
                                    tile_mass)
from skhepex.pruning.units import floor_counts
from skhepex.tiling import TileLayout

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "pruning.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_pruning_honest", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mlp(X, y, hidden=(32, 24)):
    return MLPClassifier(hidden_layer_sizes=hidden, max_iter=3, random_state=0).fit(X, y)


@pytest.mark.parametrize("criterion", ["magnitude", "taylor"])
@pytest.mark.parametrize("inputs", [False, True])
def test_budget_permutation_is_exact_and_keeps_more(digits, criterion, inputs):
    X, y = digits
    clf = _mlp(X, y)
    est = _mlp(X, y)
    layout = TileLayout(est, (8, 8))
    imps = importance_matrices(est, layout, X, y, criterion, random_state=0)
    perms, before, after = budget_permutation(est, layout, imps, 0.8, permute_inputs=inputs,
                                              n_init=2, random_state=0)
    np.testing.assert_allclose(est.predict_proba(X), clf.predict_proba(X), atol=1e-10)
    assert after >= before - 1e-12 and perms
    assert ("input" in perms) == inputs


@pytest.mark.parametrize("kind", ["ae", "cnn"])
def test_permuter_budget_objective_is_exact(digits, kind):
    X, y = digits
    if kind == "ae":
        est = Autoencoder(hidden_layer_sizes=(24, 16, 24), max_iter=2, random_state=0).fit(X)
        y, fn = None, "predict"
    else:
        est = CNNClassifier(conv_channels=(4, 8), max_iter=1, random_state=0).fit(X, y)
        fn = "predict_proba"
    step = Permuter(tile_sparsity=0.7, random_state=0)
    out = step.prune(est, X, y, tile_shape=(4, 8))
    np.testing.assert_allclose(getattr(out, fn)(X), getattr(est, fn)(X), atol=1e-9)
    assert step.kept_importance_ >= step.kept_importance_before_ - 1e-12
    assert step.n_nonzero_tiles_ == tile_report(out, (4, 8)).n_nonzero_tiles


def test_tile_pruner_permutation_is_recorded_and_counts_match(digits):
    X, y = digits
    h = HEPEx(MLPClassifier(hidden_layer_sizes=(32, 24), max_iter=3, random_state=0),
              [("tiles", TilePruner(tile_sparsity=0.8, n_steps=2, fine_tune_iter=1,
                                    random_state=0))]).fit(X, y)
    step = h.steps_[0][1]
    assert step.permute and set(step.permutations_) <= {0, 1}
    for key, perm in step.permutations_.items():
        assert sorted(perm) == list(range(len(perm)))
    rep = tile_report(h)
    assert h.n_ciphertexts_ == rep.n_nonzero_tiles == step.n_nonzero_tiles_
    assert [r["n_nonzero_tiles"] for r in rep.layers] == \
        [lt.n_nonzero_tiles for lt in TileLayout(h).layers]


def test_keep_tiles_budget_and_floor():
    rng = np.random.RandomState(0)
    masses = [rng.rand(4, 8), rng.rand(8, 4) * 1e-3, rng.rand(2, 8)]
    keep = keep_tiles(masses, 0.75, "global", [3, 3, 1])
    assert sum(int(k.sum()) for k in keep) == 80 - round(0.75 * 80)
    assert all(k.sum() >= f for k, f in zip(keep, [3, 3, 1]))
    per = keep_tiles(masses, 0.5, "layer")
    assert [int(k.sum()) for k in per] == [16, 16, 8]
    np.testing.assert_allclose(tile_mass(np.ones((5, 9)), (4, 8)), [[32, 4], [8, 1]])


@pytest.mark.parametrize("criterion", ["l2", "taylor"])
def test_no_layer_is_left_without_a_tile(digits, criterion):
    # the collapse: global l2 ranking with a row cost kept 1 of 128 tiles
    X, y = digits
    clf = _mlp(X, y, hidden=(128, 64))
    for tile_sparsity, floor in [(0.5, 0.25), (0.97, 0.0)]:
        step = TilePruner(criterion=criterion, scope="global", row_cost=16,
                          tile_sparsity=tile_sparsity, layer_floor=floor, n_steps=2,
                          fine_tune_iter=1, random_state=0)
        out = step.prune(clf, X, y, tile_shape=(8, 8))
        lay = TileLayout(out, (8, 8))
        counts = [lt.n_nonzero_tiles for lt in lay.layers]
        assert min(counts) >= 1, counts
        assert lay.layers[-1].tile_mask.any(axis=1).all()    # every output connected
        if floor:
            floors = floor_counts(lay, tile_sparsity, floor)
            assert all(c >= f for c, f in zip(counts[:-1], floors[:-1])), (counts, floors)
        assert out.score(X, y) > 0.1


def test_equal_epoch_budgets():
    assert n_rounds(ABLATION_STEPS["PPTE"]) == 7 and n_rounds(ABLATION_STEPS["T"]) == 3
    for used in ABLATION_STEPS.values():
        steps = dict(build_steps(used, 0.9, 0.8, epochs=84))
        total = sum(s.fine_tune_iter * (getattr(s, "n_steps", 1))
                    for s in steps.values() if s != "passthrough" and hasattr(s, "fine_tune_iter"))
        assert total == 84, used
    assert not dict(build_steps(("tiles",), tile_sparsity=0.8))["tiles"].permute
    assert dict(build_steps(ABLATION_STEPS["PPT"], tile_sparsity=0.8))["tiles"].permute


class _NoTest(dict):
    """A record whose test score cannot be read."""

    def __getitem__(self, key):
        if key in ("test_score", "score"):
            raise AssertionError("model selection read the test split")
        return super().__getitem__(key)

    def get(self, key, default=None):
        if key in ("test_score", "score"):
            raise AssertionError("model selection read the test split")
        return super().get(key, default)


def test_selection_never_reads_the_test_split():
    bench = _bench()
    dense = _NoTest(val_score=0.96, n_ciphertexts=400, test_score=0.0)
    points = [_NoTest(val_score=v, n_ciphertexts=n, test_score=0.0)
              for v, n in [(0.95, 80), (0.94, 40), (0.90, 20)]]
    sel = bench.select_on_validation(points, dense, 0.025)
    assert sel["n_ciphertexts"] == 40
    assert bench.select_on_validation(points[2:], dense, 0.025) is None


def test_benchmark_summary_uses_validation_for_selection():
    bench = _bench()
    recs = [{"network": "n", "seed": 0, "draw": 0, "variant": "dense", "budget": None,
             "n_ciphertexts": 100, "val_score": 1.0, "test_score": 1.0, "min_layer_tiles": 9}]
    for v, val_test in {"T": [(0.99, 0.5), (0.9, 0.99)],
                        "pTE": [(0.99, 0.99), (0.98, 0.98)]}.items():
        for (val, test), (b, n) in zip(val_test, [(0.5, 50), (0.8, 20)]):
            recs.append({"network": "n", "seed": 0, "draw": 0, "variant": v, "budget": b,
                         "n_ciphertexts": n, "val_score": val, "test_score": test,
                         "min_layer_tiles": 1})
    rows = bench.summarise(recs, 0.025)["n"]["variants"]
    # T: the 20-tile point has the better test score but fails on validation
    assert rows["T"]["tiles"] == [50.0, 0.0]
    assert rows["pTE"]["tiles"] == [20.0, 0.0]
    assert rows["pTE"]["tiles_vs_T"][0] == pytest.approx(-0.6)
    assert bench.crossing([50, 20], [0.0, 0.1], 0.025) == pytest.approx(50 - 30 * 0.25)


def test_auto_fine_tuning_follows_training_length(digits):
    from skhepex.pruning._base import fine_tune_epochs

    X, y = digits
    clf = _mlp(X, y)                       # 3 epochs: the floor of 20
    assert fine_tune_epochs("auto", clf) == 20 and fine_tune_epochs(7, clf) == 7
    clf.n_iter_ = 300
    assert fine_tune_epochs("auto", clf) == 100
    clf.n_iter_ = 10_000
    assert fine_tune_epochs("auto", clf) == 200
    assert TilePruner().fine_tune_iter == "auto" and TilePruner().permute
