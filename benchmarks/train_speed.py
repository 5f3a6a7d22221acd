"""Training speed: skhepex's NumPy MLP vs scikit-learn's MLPClassifier, one run.

Same architecture (64-128-10, relu), same epochs, batch size and solver, on the
digits data (MinMax-scaled). Early stopping and tolerance-based stopping are
disabled so both run exactly ``--epochs`` epochs. Writes JSON to ``--out``.

Run: ``python benchmarks/train_speed.py --out train_speed.json``
"""

import argparse
import json
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLP

from skhepex import MLPClassifier
from skhepex.experiments import load_task


def _time_fit(est, X, y, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        est.fit(X, y)
        times.append(time.perf_counter() - t)
    return min(times), est


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100,
                        help="training epochs of both networks (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=200,
                        help="mini-batch size (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="fits per library; the fastest is reported (default: %(default)s)")
    parser.add_argument("--out", default=None,
                        help="JSON output path (default: print only)")
    args = parser.parse_args(argv)
    task = load_task("mlp")  # digits, MinMax, 25% held out, stratified, seed 0
    X_train, X_test, y_train, y_test = task.X_train, task.X_test, task.y_train, task.y_test
    common = dict(hidden_layer_sizes=(128,), activation="relu", solver="adam",
                  batch_size=args.batch_size, max_iter=args.epochs, tol=0.0,
                  n_iter_no_change=args.epochs + 1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t_sk, sk = _time_fit(SkMLP(**common), X_train, y_train, args.repeats)
        t_us, us = _time_fit(MLPClassifier(**common), X_train, y_train, args.repeats)
    result = {
        "epochs": args.epochs, "batch_size": args.batch_size,
        "sklearn_s": t_sk, "skhepex_s": t_us, "ratio": t_us / t_sk,
        "sklearn_epochs": sk.n_iter_, "skhepex_epochs": us.n_iter_,
        "sklearn_accuracy": sk.score(X_test, y_test),
        "skhepex_accuracy": us.score(X_test, y_test),
    }
    print(f"sklearn {t_sk:.3f}s ({sk.n_iter_} epochs, acc {result['sklearn_accuracy']:.4f})")
    print(f"skhepex {t_us:.3f}s ({us.n_iter_} epochs, acc {result['skhepex_accuracy']:.4f})")
    print(f"ratio skhepex/sklearn = {result['ratio']:.2f} (goal <= 1.5)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
