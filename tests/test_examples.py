"""The gallery examples run end to end (small settings, real encryption), without warnings."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ALL = sorted(p.stem for p in EXAMPLES.glob("plot_*.py"))

#: Figures each example saves (into ``out``; by default skhepex_out/figures).
FIGURES = {"plot_grid_search_pruning": ["grid_search_pareto.png"],
           "plot_denoising_autoencoder": ["denoising.png"],
           "plot_cnn": ["cnn_tile_maps.png"]}

# every example at its documented settings: no ConvergenceWarning
pytestmark = pytest.mark.filterwarnings("error::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(autouse=True)
def _no_figures_left():
    """The examples leave their figures open (for plt.show() and the gallery): close them."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def _load(name):
    pytest.importorskip("matplotlib").use("Agg")
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_tested_and_documented():
    tested = {name[len("test_"):] for name in globals() if name.startswith("test_")}
    for name in ALL:
        assert name.removeprefix("plot_") in tested, name
        doc = _load(name).__doc__
        assert f"python examples/{name}.py" in doc, name
        for fig in FIGURES.get(name, []):
            assert f"skhepex_out/figures/{fig}" in doc, (name, fig)   # the default folder


def test_grid_search_pruning(tmp_path, capsys):
    search = _load("plot_grid_search_pruning").main(out=tmp_path)
    res = search.cv_results_
    best = search.best_index_
    top = np.max(res["mean_test_score"])
    ok = res["mean_test_score"] >= top * (1 - 0.025) - 1e-12
    assert ok[best]
    assert -res["mean_test_ciphertexts"][best] == np.min(-res["mean_test_ciphertexts"][ok])
    assert (tmp_path / "grid_search_pareto.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert out.count("<- chosen") == 1 and "budget" in out
    for cts in -res["mean_test_ciphertexts"]:
        assert f"{cts:.2f}" in out                     # fold means, not rounded to integers


def test_encrypted_client_server():
    y_he, y_plain = _load("plot_encrypted_client_server").main()
    np.testing.assert_array_equal(y_he, y_plain)


def test_denoising_autoencoder(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    module = _load("plot_denoising_autoencoder")
    assert module.main.__defaults__ == (module.FIGURES,)
    assert module.FIGURES == Path("skhepex_out", "figures")
    mse_noisy, mse_he = module.main()                  # saves into the default folder
    assert mse_he < mse_noisy
    assert (tmp_path / "skhepex_out" / "figures" / "denoising.png").stat().st_size > 0
    assert plt.get_fignums()          # left open: plt.show() and the gallery display it


def test_cnn(tmp_path):
    y_he = _load("plot_cnn").main(out=tmp_path, n_samples=16)
    assert y_he.shape == (16,)
    assert (tmp_path / "cnn_tile_maps.png").stat().st_size > 0


def test_encrypted_regression():
    r2_plain, r2_he = _load("plot_encrypted_regression").main()
    assert r2_he >= 0.3 and abs(r2_he - r2_plain) < 0.01
