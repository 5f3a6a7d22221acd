"""Command-line interface: ``skhepex demo`` (and ``python -m skhepex``)."""

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path

logger = logging.getLogger("skhepex")


def _load_digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0)
    scaler = MinMaxScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


class _Progress:
    """One line per stage with elapsed time, on stderr; silent when quiet."""

    def __init__(self, quiet):
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def __call__(self, message):
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:7.1f}s] {message}", file=sys.stderr,
                  flush=True)


def _format_table(rows, columns):
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append("  ".join(str(r[c]).ljust(w) for c, w in zip(columns, widths)))
    return "\n".join(out)


def cmd_networks(args):
    """Train each network on digits and print score, time and weight tiles."""
    from . import Autoencoder, CNNClassifier, MLPClassifier, tile_report

    progress = _Progress(args.quiet)
    X_train, X_test, y_train, y_test = _load_digits_split()
    models = {
        "MLPClassifier 64-64-10": (MLPClassifier(hidden_layer_sizes=(64,), random_state=0), True),
        "Autoencoder 64-32-64": (Autoencoder(hidden_layer_sizes=(32,), random_state=0), False),
        "CNNClassifier conv(16,32)": (CNNClassifier(random_state=0), True),
    }
    rows = []
    for name, (est, supervised) in models.items():
        progress(f"training {name}")
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X_train, y_train if supervised else None)
        elapsed = time.perf_counter() - t
        rep = tile_report(est, tuple(args.tile_shape))
        rows.append({"model": name, "metric": "accuracy" if supervised else "R2",
                     "score": round(est.score(X_test, y_test if supervised else None), 4),
                     "train_s": round(elapsed, 2), "weight_tiles": rep.n_tiles})
    return rows


def build_parser():
    """The argument parser of the ``skhepex`` command."""
    parser = argparse.ArgumentParser(
        prog="skhepex",
        description="HE-PEx: pruning neural networks for homomorphic encryption.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train networks on the embedded digits data")
    demo.add_argument("--tile-shape", type=int, nargs=2, default=(8, 8), metavar=("T1", "T2"),
                      help="tile shape (default: 8 8)")
    demo.add_argument("--out", type=Path, default=None, help="folder for JSON output")
    demo.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def main(argv=None):
    """Entry point of the ``skhepex`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        if min(args.tile_shape) < 1:
            parser.error("--tile-shape values must be positive")
        rows = cmd_networks(args)
        print(_format_table(rows, list(rows[0])))
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "demo.json").write_text(json.dumps(rows, indent=2))
    return 0
