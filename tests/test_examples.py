"""The gallery examples run end to end (small settings, real encryption)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_grid_search_example(tmp_path):
    pytest.importorskip("matplotlib")
    search = _load("plot_grid_search_pruning").main(out=tmp_path)
    res = search.cv_results_
    best = search.best_index_
    top = np.max(res["mean_test_score"])
    assert res["mean_test_score"][best] >= top * (1 - 0.025) - 1e-12
    ok = res["mean_test_score"] >= top * (1 - 0.025) - 1e-12
    assert -res["mean_test_ciphertexts"][best] == np.min(-res["mean_test_ciphertexts"][ok])
    assert (tmp_path / "grid_search_pareto.png").stat().st_size > 0


def test_client_server_example():
    y_he, y_plain = _load("plot_encrypted_client_server").main()
    np.testing.assert_array_equal(y_he, y_plain)


def test_denoising_example(tmp_path):
    pytest.importorskip("matplotlib")
    mse_noisy, mse_he = _load("plot_denoising_autoencoder").main(out=tmp_path)
    assert mse_he < mse_noisy
    assert (tmp_path / "denoising.png").stat().st_size > 0


def test_cnn_example(tmp_path):
    pytest.importorskip("matplotlib")
    module = _load("plot_cnn")
    y_he = module.main(out=tmp_path, n_samples=16)
    assert y_he.shape == (16,)
    assert (tmp_path / "cnn_tile_maps.png").stat().st_size > 0
