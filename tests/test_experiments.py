"""The experiment definitions: tasks, variants, the JSON records, and benchmarks/ using them."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from skhepex.experiments import (CIPHERTEXT_KEYS, STEP_NAMES, TASKS, VARIANT_DOC, VARIANTS,
                                 default_grid, json_record, load_task, read_records,
                                 select_within, variant_steps)
from skhepex.pruning import Expander, MagnitudePruner, Permuter, TilePruner

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


# --------------------------------------------------------------------- tasks
def test_load_task_splits_and_descriptions():
    task = load_task("mlp")
    assert task.description == "classification, MLP 64-128-10"
    assert task.metric == "accuracy"
    assert len(task.X_train) + len(task.X_test) == 1797
    assert len(task.X_fit) + len(task.X_val) == len(task.X_train)
    assert task.X_train.min() >= 0 and task.X_train.max() <= 1
    assert load_task("ae").y_train is None
    assert load_task("cnn").description == "classification, CNN conv(16)-conv(32)-dense"
    dae = load_task("dae")
    assert dae.y_train.shape == dae.X_train.shape and dae.metric == "R2 (clean)"
    assert set(TASKS) == {"mlp", "cnn", "ae", "dae"}
    with pytest.raises(ValueError, match="Unknown task"):
        load_task("resnet")


def test_load_task_estimator_params():
    task = load_task("ae", estimator_params={"hidden_layer_sizes": (128, 32, 128),
                                             "max_iter": 7})
    assert task.estimator.hidden_layer_sizes == (128, 32, 128)
    assert task.estimator.max_iter == 7
    assert task.description == "image compression, autoencoder 64-128-32-128-64"
    # same data as without the parameters
    np.testing.assert_array_equal(task.X_test, load_task("ae").X_test)


# ------------------------------------------------------------------ variants
def test_variant_names_and_steps():
    assert VARIANTS == ("dense", "P", "Hunter", "PPTE")
    assert set(VARIANTS) < set(VARIANT_DOC) and "prune+tiles" in VARIANT_DOC
    used = {}
    for variant in VARIANT_DOC:
        steps = variant_steps(variant, 0.9, 0.6, 4)
        assert [name for name, _ in steps] == list(STEP_NAMES)
        used[variant] = {name for name, step in steps if step != "passthrough"}
    assert used == {"dense": set(), "P": {"prune"}, "Hunter": {"tiles"},
                    "prune+tiles": {"prune", "tiles"},
                    "PPTE": {"prune", "permute", "tiles", "expand"}}
    steps = dict(variant_steps("PPTE", 0.9, 0.6, 4, permute_inputs=True,
                               permute_outputs=True, row_weight=2.0, row_cost=16.0))
    assert isinstance(steps["prune"], MagnitudePruner) and steps["prune"].sparsity == 0.9
    assert isinstance(steps["permute"], Permuter)
    assert steps["permute"].permute_inputs and steps["permute"].permute_outputs
    assert steps["permute"].row_weight == 2.0
    assert isinstance(steps["tiles"], TilePruner) and steps["tiles"].tile_sparsity == 0.6
    assert steps["tiles"].row_cost == 16.0
    assert isinstance(steps["expand"], Expander) and steps["expand"].fine_tune_iter == 4
    for bad in ("hunter", "PPT"):
        with pytest.raises(ValueError, match="Unknown variant"):
            variant_steps(bad)
        with pytest.raises(ValueError, match="Unknown variant"):
            default_grid(bad)


def test_default_grid():
    assert default_grid("dense") == [(0.0, 0.0)]
    assert all(t == 0.0 for _, t in default_grid("P"))
    assert all(s == 0.0 for s, _ in default_grid("Hunter", quick=True))
    assert len(default_grid("PPTE", quick=True)) < len(default_grid("PPTE"))


def test_select_within():
    recs = [
        {"variant": "dense", "n_ciphertexts": 100, "val_score": 1.0, "score": 0.9},
        {"variant": "P", "n_ciphertexts": 80, "val_score": 0.99, "score": 0.88},
        {"variant": "P", "n_ciphertexts": 40, "val_score": 0.5, "score": 0.5},
        {"variant": "Hunter", "n_ciphertexts": 30, "val_score": 0.6, "score": 0.6},
    ]
    sel = select_within(recs, tolerance=0.025)
    assert sel["P"]["n_ciphertexts"] == 80 and sel["P"]["within_tolerance"]
    assert sel["P"]["ciphertext_reduction"] == pytest.approx(0.2)
    assert sel["P"]["degradation"] == pytest.approx(0.02 / 0.9)
    assert not sel["Hunter"]["within_tolerance"]
    with pytest.raises(ValueError, match="dense"):
        select_within(recs[1:])


# ------------------------------------------------------------------- records
def test_json_record_drops_the_model():
    rec = {"variant": "P", "n_ciphertexts": 3, "model": object()}
    assert json_record(rec) == {"variant": "P", "n_ciphertexts": 3}
    assert "model" in rec


def test_read_records_layouts(tmp_path):
    records = [{"task": "mlp", "variant": "P", "n_nonzero_tiles": -12, "score": 0.9},
               {"task": "ae", "variant": "P", "n_ciphertexts": 5, "score": 0.8},
               "not a record"]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"tile_shape": [8, 8], "records": records}))
    with pytest.raises(ValueError, match="several tasks"):
        read_records(path)
    mlp = read_records(str(path), task="mlp")
    assert mlp == [{"task": "mlp", "variant": "P", "n_nonzero_tiles": -12, "score": 0.9,
                    "n_ciphertexts": 12}]
    assert records[0] == {"task": "mlp", "variant": "P", "n_nonzero_tiles": -12,
                          "score": 0.9}                     # inputs are not modified
    with pytest.raises(ValueError, match="No record has task"):
        read_records(records, task="cnn")
    by_variant = read_records({"P": {"ciphertexts": 4}, "PPTE": [{"weight_ciphertexts": 2}]})
    assert [(r["variant"], r["n_ciphertexts"]) for r in by_variant] == [("P", 4), ("PPTE", 2)]
    assert read_records({"rows": [{"x": 1}]}) == [{"x": 1}]   # no count: kept as is
    with pytest.raises(ValueError, match="list of records"):
        read_records(42)
    assert CIPHERTEXT_KEYS[0] == "n_ciphertexts"


# ---------------------------------------------------------------- benchmarks
def _load_script(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pruning_benchmark_uses_the_shared_definitions():
    bench = _load_script("pruning")
    assert set(bench.BENCH_VARIANTS) == set(VARIANT_DOC)
    assert set(bench.NETWORKS) <= set(TASKS)
    for net in bench.NETWORKS:
        grid = bench.grids(net, quick=True)
        cands = list(bench.candidates(net, True, 3, bench.ROW_COST[net], 1.0, grid))
        assert [v for v, _, _ in cands] == list(bench.BENCH_VARIANTS)
        for variant, params, steps in cands:
            expected = variant_steps(variant, params.get("sparsity", 0.0),
                                     params.get("tile_sparsity", 0.0), 3,
                                     row_cost=bench.ROW_COST[net])
            assert [(n, s if s == "passthrough" else s.get_params())
                    for n, s in steps] == \
                [(n, s if s == "passthrough" else s.get_params()) for n, s in expected]
    task = bench.network_task("mlp", quick=True)
    assert task.estimator.hidden_layer_sizes == (128, 128)
    assert bench.build_parser().parse_args(["--networks", "ae"]).networks == ["ae"]


# ------------------------------------------------------------------ measuring
def test_measure_encrypted_many_interleaves_and_reports_medians(monkeypatch):
    from sklearn.datasets import load_digits

    from skhepex import MLPClassifier
    from skhepex.experiments import measure_encrypted, measure_encrypted_many

    X, y = load_digits(return_X_y=True)
    X = X[:200] / 16
    nets = {name: MLPClassifier(hidden_layer_sizes=(h,), max_iter=3, random_state=0)
            .fit(X, y[:200]) for name, h in (("small", 8), ("large", 16))}
    calls = []
    from skhepex.he import HEPredictor

    predict = HEPredictor.predict

    def spy(self, X):
        calls.append(self.estimator_.hidden_layer_sizes[0])
        return predict(self, X)

    monkeypatch.setattr(HEPredictor, "predict", spy)
    res = measure_encrypted_many(nets, X[:16], repeats=3, mode="simulate")
    # one warm-up each, then three interleaved rounds
    assert calls == [8, 16] + [8, 16] * 3
    for name, r in res.items():
        runs = r["seconds_per_sample_runs"]
        assert r["repeats"] == 3 and len(runs) == 3
        assert r["seconds_per_sample"] == sorted(runs)[1]
        assert r["seconds_per_sample_min"] == min(runs) and r["seconds_per_sample_max"] == max(runs)
        assert r["spread"] == pytest.approx((max(runs) - min(runs)) / 2 / sorted(runs)[1])
        assert r["agreement"] == 1.0 and r["n_samples"] == 16
        assert r["server_seconds_per_batch"] is None      # simulate: no server timing
    one = measure_encrypted(nets["small"], X[:16], repeats=1, mode="simulate")
    assert one["repeats"] == 1 and one["spread"] == 0.0
    with pytest.raises(ValueError, match="repeats"):
        measure_encrypted(nets["small"], X[:16], repeats=0, mode="simulate")
