"""
Grid-search pruning parameters with the ciphertext refit rule
=============================================================

The paper's variants are one grid: each HE-PEx step can be replaced by
``"passthrough"``. ``GridSearchCV`` scores every candidate twice (accuracy and
weight ciphertexts) and refits the candidate with the *fewest ciphertexts*
among those within 2.5% of the best accuracy. ``memory=`` caches the dense
training, so it runs once per fold, not once per candidate.

Run: ``python examples/plot_grid_search_pruning.py [--out FOLDER]``
"""

import argparse
import tempfile
import warnings
from pathlib import Path

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from skhepex import (Expander, HEPEx, MagnitudePruner, MLPClassifier, Permuter, TilePruner,
                     fewest_ciphertexts_within, hepex_scoring, tile_report)


def main(out=None):
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
    with tempfile.TemporaryDirectory() as cache:
        model = make_pipeline(
            MinMaxScaler(),
            HEPEx(MLPClassifier(hidden_layer_sizes=(64,), max_iter=100, random_state=0),
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
                              refit=fewest_ciphertexts_within(0.025))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            search.fit(X_train, y_train)
    res = search.cv_results_
    print("candidate                                  accuracy  ciphertexts")
    for params, acc, ct in zip(res["params"], res["mean_test_score"],
                               res["mean_test_ciphertexts"]):
        name = (f"tile_sparsity={params['hepex__tiles__tile_sparsity']:.2f}, permute="
                f"{'yes' if params['hepex__permute'] != 'passthrough' else 'no'}")
        print(f"{name:<42} {acc:8.4f}  {-ct:11.0f}")
    best = search.best_estimator_
    print(f"chosen: {search.best_params_}")
    print(f"held-out accuracy {best.score(X_test, y_test):.4f}, "
          f"{best[-1].n_ciphertexts_} of {best[-1].n_ciphertexts_dense_} weight ciphertexts")
    print(tile_report(best))
    if out is not None:
        from skhepex import ParetoDisplay

        disp = ParetoDisplay.from_cv_results(search)
        disp.figure_.savefig(Path(out) / "grid_search_pareto.png", dpi=100)
    return search


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--out", default=None, help="folder for the Pareto plot")
    main(parser.parse_args().out)
