"""
Grid-search pruning parameters with the ciphertext refit rule
=============================================================

The paper's variants are one grid: each HE-PEx step can be replaced by
``"passthrough"``. ``GridSearchCV`` scores every candidate twice (accuracy and
weight ciphertexts) and refits the candidate with the *fewest ciphertexts*
among those within 2.5% of the best accuracy: the chosen model is the
cheapest one that is accurate enough, so it is often *not* the most accurate
one. ``memory=`` caches the dense training, so it runs once per fold, not once
per candidate.

The ciphertext counts are means over the 3 cross-validation folds (each fold
prunes its own network), so they need not be whole numbers.

Run: ``python examples/plot_grid_search_pruning.py``. The Pareto plot is saved
to ``skhepex_out/figures/grid_search_pareto.png`` under the current folder
(and shown when matplotlib has a display).
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from skhepex import (Expander, HEPEx, MagnitudePruner, MLPClassifier, ParetoDisplay, Permuter,
                     TilePruner, fewest_ciphertexts_within, hepex_scoring, tile_report)

#: Folder the figure is saved into (relative to the current folder).
FIGURES = Path("skhepex_out", "figures")
TOLERANCE = 0.025


def print_candidates(search, tolerance=TOLERANCE):
    """One line per candidate: mean CV accuracy, mean ciphertexts, budget, choice."""
    res = search.cv_results_
    acc, cts = res["mean_test_score"], -res["mean_test_ciphertexts"]
    budget = acc.max() - tolerance * abs(acc.max())
    print(f"budget: mean CV accuracy >= {budget:.4f} ({100 * tolerance:g}% below the best, "
          f"{acc.max():.4f}); among those, the fewest mean ciphertexts win")
    print("tile_sparsity  permute  CV accuracy  ciphertexts (mean of 3 folds)")
    for i, params in enumerate(res["params"]):
        permute = "yes" if params["hepex__permute"] != "passthrough" else "no"
        note = ("<- chosen" if i == search.best_index_
                else "" if acc[i] >= budget - 1e-12 else "(below the budget)")
        print(f"{params['hepex__tiles__tile_sparsity']:13.2f}  {permute:>7}  {acc[i]:11.4f}"
              f"  {cts[i]:11.2f}  {note}".rstrip())


def main(out=FIGURES):
    """Search, print every candidate, refit the chosen one; save the Pareto plot."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
    with tempfile.TemporaryDirectory() as cache:
        model = make_pipeline(
            MinMaxScaler(),
            HEPEx(MLPClassifier(hidden_layer_sizes=(64,), tol=1e-3, random_state=0),
                  steps=[("prune", MagnitudePruner(sparsity=0.8, scope="global",
                                                   fine_tune_iter=10)),
                         ("permute", Permuter(random_state=0)),
                         ("tiles", TilePruner(tile_sparsity=0.5, criterion="taylor",
                                              scope="global", regrow=True,
                                              fine_tune_iter=10, random_state=0)),
                         ("expand", Expander(fine_tune_iter=10))],
                  tile_shape=(8, 8), memory=cache))
        grid = {"hepex__tiles__tile_sparsity": [0.25, 0.5, 0.75],
                "hepex__permute": [Permuter(random_state=0), "passthrough"]}
        search = GridSearchCV(model, grid, cv=3, scoring=hepex_scoring(),
                              refit=fewest_ciphertexts_within(TOLERANCE))
        search.fit(X_train, y_train)
    disp = ParetoDisplay.from_cv_results(search, variant_param="hepex__permute",
                                         score_name="mean CV accuracy")
    disp.ax_.set_title("grid search: the star is the refitted candidate", fontsize=9)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        disp.figure_.savefig(Path(out) / "grid_search_pareto.png", dpi=100)
        print(f"saved {Path(out) / 'grid_search_pareto.png'}")

    print_candidates(search)
    best = search.best_estimator_
    i = search.best_index_
    print(f"chosen: {search.best_params_}: CV accuracy "
          f"{search.cv_results_['mean_test_score'][i]:.4f}, the best is "
          f"{np.max(search.cv_results_['mean_test_score']):.4f}")
    print(f"refitted on the whole training set: held-out accuracy "
          f"{best.score(X_test, y_test):.4f}, {best[-1].n_ciphertexts_} of "
          f"{best[-1].n_ciphertexts_dense_} weight ciphertexts")
    print(tile_report(best))
    return search


if __name__ == "__main__":
    main()
    plt.show()  # a window when matplotlib has a display; nothing otherwise
