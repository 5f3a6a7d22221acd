"""Paper-style experiments on the embedded digits data.

Shared by ``skhepex demo``, ``skhepex bench`` and the scripts in
``benchmarks/``: the tasks (classification with an MLP or a CNN, image
compression and denoising with autoencoders), the HE-PEx variants as
:class:`~skhepex.HEPEx` step lists, the sparsity sweeps, the selection of the
cheapest model within a degradation budget, and the encrypted measurement of a
selected model with :class:`~skhepex.HEPredictor`.

Degradation is relative: ``(dense_score - score) / |dense_score|`` of the
held-out accuracy (classification) or R² (autoencoders). Selection uses a
validation split carved from the training data, never the test data.
"""

import logging
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler

from .estimators import Autoencoder, CNNClassifier, MLPClassifier
from .pruning import Expander, HEPEx, MagnitudePruner, Permuter, TilePruner

__all__ = ["Task", "VARIANTS", "VARIANT_DOC", "FINE_TUNE_ITER", "default_grid", "load_task",
           "measure_encrypted", "select_within", "sweep", "variant_steps"]

logger = logging.getLogger("skhepex")

#: The HE-PEx variants compared everywhere, in display order.
VARIANTS = ("dense", "P", "Hunter", "PPTE")
VARIANT_DOC = {
    "dense": "no pruning",
    "P": "magnitude pruning only",
    "Hunter": "tile pruning of the dense network (Hunter-style structured pruning)",
    "PPTE": "prune, permute, tile-prune, expand (HE-PEx)",
}


@dataclass
class Task:
    """A learning task on digits: data splits, the network and its metric."""

    name: str
    description: str
    estimator: object
    metric: str
    X_train: np.ndarray
    y_train: object
    X_val: np.ndarray
    y_val: object
    X_test: np.ndarray
    y_test: object
    X_fit: np.ndarray = field(repr=False, default=None)
    y_fit: object = field(repr=False, default=None)


def _noisy(X, rng, sigma=0.2):
    return np.clip(X + rng.normal(0.0, sigma, X.shape), 0.0, 1.0)


def load_task(name, random_state=0):
    """Build one task on digits (MinMax-scaled, 25% held out, stratified).

    Parameters
    ----------
    name : {"mlp", "cnn", "ae", "dae"}
        Classification with an MLP 64-128-10 or the default CNN, image
        compression with an autoencoder 64-32-64, or denoising (Gaussian
        noise, sigma 0.2, clipped) with an autoencoder 64-64-64.
    random_state : int, default=0
        Seed of the splits, the noise and the networks.

    Returns
    -------
    task : Task
        ``X_fit``/``y_fit`` (training minus a 20% validation part) train the
        candidates; ``X_val`` selects among them; ``X_test`` reports.
    """
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=random_state)
    scaler = MinMaxScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    rng = np.random.RandomState(random_state)
    if name == "mlp":
        est = MLPClassifier(hidden_layer_sizes=(128,), activation="square",
                            random_state=random_state)
        desc, metric = "classification, MLP 64-128-10", "accuracy"
    elif name == "cnn":
        est = CNNClassifier(activation="square", random_state=random_state)
        desc, metric = "classification, CNN conv(16)-conv(32)-dense", "accuracy"
    elif name == "ae":
        est = Autoencoder(hidden_layer_sizes=(32,), activation="square",
                          random_state=random_state)
        desc, metric = "image compression, autoencoder 64-32-64", "R2"
        y_train, y_test = None, None
    elif name == "dae":
        est = Autoencoder(hidden_layer_sizes=(64,), activation="square",
                          random_state=random_state)
        desc, metric = "denoising, autoencoder 64-64-64", "R2 (clean)"
        clean_train, clean_test = X_train, X_test
        X_train = np.vstack([_noisy(clean_train, rng) for _ in range(3)])
        y_train = np.vstack([clean_train] * 3)
        X_test, y_test = _noisy(clean_test, rng), clean_test
    else:
        raise ValueError(f"Unknown task {name!r}; expected 'mlp', 'cnn', 'ae' or 'dae'.")
    stratify = y_train if metric == "accuracy" else None
    if y_train is None:
        X_fit, X_val = train_test_split(X_train, test_size=0.2, random_state=random_state)
        y_fit = y_val = None
    else:
        X_fit, X_val, y_fit, y_val = train_test_split(
            X_train, y_train, test_size=0.2, stratify=stratify, random_state=random_state)
    return Task(name, desc, est, metric, X_train, y_train, X_val, y_val, X_test, y_test,
                X_fit, y_fit)


def variant_steps(variant, sparsity=0.8, tile_sparsity=0.5, fine_tune_iter=10):
    """The :class:`~skhepex.HEPEx` steps of one variant.

    Parameters
    ----------
    variant : {"dense", "P", "Hunter", "PPTE"}
        See :data:`VARIANT_DOC`.
    sparsity : float, default=0.8
        Weight sparsity of the magnitude pruner.
    tile_sparsity : float, default=0.5
        Fraction of tiles (pruning units) removed by the tile pruner.
    fine_tune_iter : int, default=10
        Fine-tuning epochs of each step.

    Returns
    -------
    steps : list of (str, step)
        Always the four names ``prune, permute, tiles, expand``; unused steps
        are ``"passthrough"``, so all variants are points of one grid.
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; expected one of {VARIANTS}.")
    use = {"dense": (), "P": ("prune",), "Hunter": ("tiles",),
           "PPTE": ("prune", "permute", "tiles", "expand")}[variant]
    # Every variant shares the same step settings (only presence differs), so
    # the Hunter-style baseline gets the same global, data-driven tile scores.
    steps = {
        "prune": MagnitudePruner(sparsity=sparsity, scope="global", n_steps=3,
                                 fine_tune_iter=fine_tune_iter),
        "permute": Permuter(random_state=0),
        "tiles": TilePruner(tile_sparsity=tile_sparsity, criterion="taylor", scope="global",
                            n_steps=3, regrow=True, fine_tune_iter=fine_tune_iter),
        "expand": Expander(fine_tune_iter=fine_tune_iter),
    }
    return [(name, steps[name] if name in use else "passthrough")
            for name in ("prune", "permute", "tiles", "expand")]


def default_grid(variant, quick=False):
    """Sparsity settings swept for a variant: list of (sparsity, tile_sparsity)."""
    tiles = (0.6, 0.8, 0.9) if quick else (0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.93)
    weights = (0.95,) if quick else (0.9, 0.97)
    if variant == "dense":
        return [(0.0, 0.0)]
    if variant == "P":
        return [(s, 0.0) for s in ((0.8, 0.95) if quick else (0.5, 0.7, 0.9, 0.95, 0.99))]
    if variant == "Hunter":
        return [(0.0, t) for t in tiles]
    return [(s, t) for s in weights for t in tiles]


#: Fine-tuning epochs per step that the tasks need (autoencoders recover slowly).
FINE_TUNE_ITER = {"mlp": 30, "cnn": 10, "ae": 60, "dae": 40}


def _score(est, X, y):
    return float(est.score(X, y))


def sweep(task, tile_shape, variants=VARIANTS, grid=default_grid, memory=None,
          fine_tune_iter=None, progress=None, quick=False):
    """Fit every variant over its sparsity grid.

    Parameters
    ----------
    task : Task
        From :func:`load_task`.
    tile_shape : tuple of int
        Tile shape used by every pruning step.
    variants : sequence of str, default=VARIANTS
        Variants to run.
    grid : callable, default=default_grid
        ``grid(variant, quick)`` -> list of (sparsity, tile_sparsity).
    memory : str, joblib.Memory or None
        Cache given to :class:`~skhepex.HEPEx` (dense training runs once).
    fine_tune_iter : int, default=None
        Fine-tuning epochs of each step; ``None`` uses :data:`FINE_TUNE_ITER`
        of the task (a third of it when ``quick``).
    progress : callable, optional
        Called with a message per fitted candidate.
    quick : bool, default=False
        Smaller grids.

    Returns
    -------
    records : list of dict
        One per candidate: variant, settings, ciphertexts, validation and
        test scores, and the fitted ``HEPEx`` under ``"model"``.
    """
    if fine_tune_iter is None:
        fine_tune_iter = FINE_TUNE_ITER.get(task.name, 10)
        if quick:
            fine_tune_iter = max(3, fine_tune_iter // 3)
    records = []
    for variant in variants:
        for sparsity, tile_sparsity in grid(variant, quick):
            t0 = time.perf_counter()
            model = HEPEx(clone(task.estimator),
                          variant_steps(variant, sparsity, tile_sparsity, fine_tune_iter),
                          tile_shape=tuple(tile_shape), memory=memory)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(task.X_fit, task.y_fit)
            rec = {"task": task.name, "variant": variant, "sparsity": sparsity,
                   "tile_sparsity": tile_sparsity, "tile_shape": list(tile_shape),
                   "n_ciphertexts": int(model.n_ciphertexts_),
                   "n_ciphertexts_dense": int(model.n_ciphertexts_dense_),
                   "val_score": _score(model, task.X_val, task.y_val),
                   "score": _score(model, task.X_test, task.y_test),
                   "metric": task.metric, "fit_seconds": time.perf_counter() - t0,
                   "model": model}
            records.append(rec)
            if progress is not None:
                progress(f"{task.name} {variant:<6} s={sparsity:.2f} t={tile_sparsity:.2f}: "
                         f"{rec['n_ciphertexts']} ct, {task.metric} {rec['score']:.4f}")
    return records


def select_within(records, tolerance=0.025):
    """Per variant, the candidate with the fewest ciphertexts within tolerance.

    The budget is relative to the dense model's *validation* score; ties go
    to the higher validation score. Adds ``degradation`` (relative, on the
    test score) to the returned records.

    Parameters
    ----------
    records : list of dict
        From :func:`sweep`; must contain the ``"dense"`` variant.
    tolerance : float, default=0.025
        Allowed relative degradation.

    Returns
    -------
    selected : dict
        Variant name -> record (variants with no candidate in budget map to
        the candidate with the best validation score, flagged
        ``within_tolerance=False``).
    """
    dense = [r for r in records if r["variant"] == "dense"]
    if not dense:
        raise ValueError("select_within needs the 'dense' variant in the records.")
    dense = dense[0]
    selected = {}
    for variant in dict.fromkeys(r["variant"] for r in records):
        cands = [r for r in records if r["variant"] == variant]
        ok = [r for r in cands
              if r["val_score"] >= dense["val_score"] - tolerance * abs(dense["val_score"])]
        if ok:
            best = min(ok, key=lambda r: (r["n_ciphertexts"], -r["val_score"]))
        else:
            best = max(cands, key=lambda r: r["val_score"])
        best = dict(best, within_tolerance=bool(ok))
        best["degradation"] = (dense["score"] - best["score"]) / abs(dense["score"])
        best["ciphertext_reduction"] = 1.0 - best["n_ciphertexts"] / dense["n_ciphertexts"]
        selected[variant] = best
    return selected


def measure_encrypted(model, X, *, plain_predictions=None, mode="encrypted", verbose=0):
    """Encrypted inference of a fitted model on ``X``, measured.

    Parameters
    ----------
    model : estimator
        A fitted ``HEPEx`` (or network).
    X : ndarray
        Samples (already scaled).
    plain_predictions : ndarray, optional
        Plaintext predictions to compare with (default: ``model.predict(X)``).
    mode : {"encrypted", "simulate"}, default="encrypted"
        Passed to :class:`~skhepex.HEPredictor`.
    verbose : int, default=0
        Passed to the predictor.

    Returns
    -------
    result : dict
        Latency per sample and per batch, packed-model and key memory,
        weight ciphertexts, agreement with the plaintext predictions (exact
        label match for classifiers, max abs difference otherwise) and the
        CKKS parameters.
    """
    from .he import HEPredictor

    t0 = time.perf_counter()
    he = HEPredictor(model, prefit=True, mode=mode, verbose=verbose).fit()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    y_he = he.predict(X)
    total_s = time.perf_counter() - t0
    y_plain = model.predict(X) if plain_predictions is None else plain_predictions
    rep = he.report_
    measured = rep.measured or {}
    out = {
        "n_samples": int(len(X)),
        "compile_seconds": compile_s,
        "end_to_end_seconds": total_s,
        "seconds_per_sample": total_s / len(X),
        "server_seconds_per_batch": measured.get("seconds_per_batch"),
        "server_seconds_per_sample": measured.get("seconds_per_sample"),
        "predicted_seconds_per_batch": rep.predicted_seconds_per_batch,
        "samples_per_ciphertext": rep.batch,
        "n_weight_ciphertexts": int(rep.n_weight_ciphertexts),
        "packed_model_bytes": int(rep.memory["packed_model_bytes"]),
        "galois_key_bytes": int(rep.memory["galois_key_bytes"]),
        "poly_modulus_degree": int(rep.params.poly_modulus_degree),
        "coeff_mod_bit_sizes": list(rep.params.coeff_mod_bit_sizes),
        "tile_shape": list(rep.tile_shape),
    }
    if hasattr(model, "classes_"):
        out["agreement"] = float(np.mean(np.asarray(y_he) == np.asarray(y_plain)))
    else:
        diff = np.abs(np.asarray(y_he, dtype=float) - np.asarray(y_plain, dtype=float))
        out["max_abs_diff"] = float(diff.max())
        out["agreement"] = float(np.mean(diff <= 1e-3))
    out["report"] = rep.to_dict()
    return out
