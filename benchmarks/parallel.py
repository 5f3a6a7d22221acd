"""Processes for encrypted inference and for grid search: n_jobs=2 vs 1, side by side.

Run by hand (never by CI)::

    OMP_NUM_THREADS=1 python benchmarks/parallel.py --out benchmarks/results/parallel.json

* ``HEPredictor(n_jobs=k).predict`` on a request of 4 full ciphertext batches
  (``--batches``) of the default (throughput) packing, or of ``--tile-shape``: alternating k=1 / k=2 runs after a warm-up, median of
  ``--repeats``; the speedup is the ratio of medians.
* ``GridSearchCV(HEPEx, n_jobs=k)`` with a ``joblib.Memory`` cache: the same
  alternation (each run with a fresh cache).
"""
import argparse
import json
import os
import statistics
import tempfile
import time
import warnings

import numpy as np


def _time(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_predict(repeats, batches, hidden, tile_shape="auto"):
    from sklearn.datasets import load_digits
    from skhepex import MLPClassifier
    from skhepex.he import HEPredictor

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    clf = MLPClassifier(hidden_layer_sizes=hidden, max_iter=50, random_state=0).fit(X, y)
    he = HEPredictor(clf, prefit=True, tile_shape=tile_shape).fit()
    n = he.plan_.batch * batches
    Xs = np.resize(X, (n, X.shape[1]))
    times = {1: [], 2: []}
    for k in (1, 2):                      # warm-up (starts the worker processes)
        he.set_params(n_jobs=k).predict(Xs[:he.plan_.batch * 2])
    for _ in range(repeats):
        for k in (1, 2):
            he.set_params(n_jobs=k)
            times[k].append(_time(lambda: he.predict(Xs)))
    med = {k: statistics.median(v) for k, v in times.items()}
    segments, _ = he._segments(he._client_input(Xs), "predict", n)
    trips = sum(len(chunks) for _, _, chunks in segments)
    return dict(network=f"64-{'-'.join(map(str, hidden))}-10",
                tile_shape=list(he.tile_shape_), n_round_trips=trips,
                n_samples=n, n_ciphertext_batches=batches, seconds=times,
                median_seconds=med, speedup=med[1] / med[2])


def bench_grid_search(repeats):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV
    from skhepex import HEPEx, MagnitudePruner, MLPClassifier, Permuter, TilePruner

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    times = {1: [], 2: []}

    def run(k):
        with tempfile.TemporaryDirectory() as cache:
            model = HEPEx(MLPClassifier(hidden_layer_sizes=(64,), max_iter=60, random_state=0),
                          steps=[("prune", MagnitudePruner(sparsity=0.8)),
                                 ("permute", Permuter(random_state=0)),
                                 ("tiles", TilePruner(tile_sparsity=0.5, random_state=0))],
                          tile_shape=(8, 8), memory=cache)
            grid = {"tiles__tile_sparsity": [0.25, 0.5, 0.75],
                    "permute": [Permuter(random_state=0), "passthrough"]}
            GridSearchCV(model, grid, cv=3, n_jobs=k).fit(X, y)

    run(2)                                 # warm-up
    for _ in range(repeats):
        for k in (1, 2):
            times[k].append(_time(lambda: run(k)))
    med = {k: statistics.median(v) for k, v in times.items()}
    return dict(candidates=6, cv=3, seconds=times, median_seconds=med,
                speedup=med[1] / med[2])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="write JSON results here")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per setting")
    p.add_argument("--batches", type=int, default=4, help="full ciphertext batches")
    p.add_argument("--skip-grid", action="store_true", help="only the predict benchmark")
    p.add_argument("--hidden", type=int, nargs="+", default=[128],
                   help="hidden layer sizes of the predict benchmark's MLP")
    p.add_argument("--tile-shape", type=int, nargs=2, default=None,
                   help="explicit tile shape (default: the automatic throughput packing)")
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    res = dict(cpu_count=os.cpu_count(), omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
               predict=bench_predict(args.repeats, args.batches, tuple(args.hidden),
                                     "auto" if args.tile_shape is None
                                     else tuple(args.tile_shape)))
    print(f"predict: n_jobs=1 {res['predict']['median_seconds'][1]:.2f} s, n_jobs=2 "
          f"{res['predict']['median_seconds'][2]:.2f} s -> {res['predict']['speedup']:.2f}x")
    if not args.skip_grid:
        res["grid_search"] = bench_grid_search(args.repeats)
        g = res["grid_search"]
        print(f"GridSearchCV: n_jobs=1 {g['median_seconds'][1]:.1f} s, n_jobs=2 "
              f"{g['median_seconds'][2]:.1f} s -> {g['speedup']:.2f}x")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
