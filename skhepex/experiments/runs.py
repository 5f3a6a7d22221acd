"""Running the experiments: sparsity sweeps, selection within a budget, encrypted runs."""

import time
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from ..pruning import HEPEx
from .tasks import FINE_TUNE_ITER
from .variants import VARIANTS, default_grid, variant_steps

__all__ = ["sweep", "select_within", "measure_encrypted"]


def _score(est, X, y):
    return float(est.score(X, y))


def sweep(task, tile_shape, variants=VARIANTS, grid=default_grid, memory=None,
          fine_tune_iter=None, progress=None, quick=False):
    """Fit every variant over its sparsity grid.

    Parameters
    ----------
    task : Task
        From :func:`~skhepex.experiments.load_task`; the candidates are fitted
        on ``task.X_fit`` and scored on ``task.X_val`` and ``task.X_test``.
    tile_shape : tuple of int (t1, t2)
        Tile shape used by every pruning step.
    variants : sequence of str, default=VARIANTS
        Variants to run (names of :data:`~skhepex.experiments.VARIANT_DOC`).
    grid : callable, default=default_grid
        ``grid(variant, quick)`` returning the list of
        ``(sparsity, tile_sparsity)`` pairs to fit for a variant.
    memory : str, joblib.Memory or None, default=None
        Cache given to :class:`~skhepex.pruning.HEPEx` (the dense network is
        then trained once for all candidates).
    fine_tune_iter : int, default=None
        Fine-tuning epochs of each step; ``None`` uses
        :data:`~skhepex.experiments.FINE_TUNE_ITER` of the task (a third of
        it, at least 3, when ``quick``).
    progress : callable, default=None
        Called with a one-line message after every fitted candidate.
    quick : bool, default=False
        Passed to ``grid`` (smaller grids).

    Returns
    -------
    records : list of dict
        One per candidate, in the record schema of
        :func:`~skhepex.experiments.read_records`: ``"task"``,
        ``"variant"``, ``"sparsity"``, ``"tile_sparsity"``, ``"tile_shape"``,
        ``"n_ciphertexts"``, ``"n_ciphertexts_dense"``, ``"val_score"``,
        ``"score"`` (held-out), ``"metric"``, ``"fit_seconds"``, plus the
        fitted ``HEPEx`` under ``"model"`` (drop it with
        :func:`~skhepex.experiments.json_record` before writing JSON).
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

    The budget is relative to the dense model's *validation* score: a
    candidate is within tolerance when
    ``val_score >= dense_val_score - tolerance * |dense_val_score|``. Among
    those, the fewest ciphertexts win; ties go to the higher validation
    score. The test score is only reported.

    Parameters
    ----------
    records : list of dict
        From :func:`sweep`; must contain the ``"dense"`` variant.
    tolerance : float, default=0.025
        Allowed relative degradation of the validation score.

    Returns
    -------
    selected : dict of str to dict
        Variant name -> a copy of the selected record with three more keys:
        ``"within_tolerance"`` (bool; ``False`` when no candidate of the
        variant is within the budget, then the candidate with the best
        validation score is returned), ``"degradation"`` (relative loss of
        the held-out score against dense) and ``"ciphertext_reduction"``
        (``1 - n_ciphertexts / dense n_ciphertexts``).

    Raises
    ------
    ValueError
        If no record has the ``"dense"`` variant.
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

    TenSEAL is imported only when this function is called.

    Parameters
    ----------
    model : estimator
        A fitted :class:`~skhepex.pruning.HEPEx` or skhepex network.
    X : ndarray of shape (n_samples, n_features)
        Samples (already scaled).
    plain_predictions : ndarray of shape (n_samples,) or (n_samples, n_outputs), default=None
        Plaintext predictions to compare with; ``None`` uses
        ``model.predict(X)``.
    mode : {"encrypted", "simulate"}, default="encrypted"
        Passed to :class:`~skhepex.HEPredictor` (``"simulate"`` runs the same
        packing on NumPy, without keys).
    verbose : int, default=0
        Passed to the predictor.

    Returns
    -------
    result : dict
        Latency (``"seconds_per_sample"`` end to end, server time per batch
        and per sample, predicted time per batch), ``"compile_seconds"``,
        memory (``"packed_model_bytes"``, ``"galois_key_bytes"``), weight
        ciphertexts, samples per ciphertext, the CKKS parameters, the tile
        shape, ``"agreement"`` with the plaintext predictions (fraction of
        equal labels for classifiers, of outputs within 1e-3 otherwise, then
        also ``"max_abs_diff"``) and the full cost report under
        ``"report"``.
    """
    from ..he import HEPredictor  # TenSEAL is loaded only when measuring

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
