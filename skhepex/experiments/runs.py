"""Running the experiments: sparsity sweeps, selection within a budget, encrypted runs."""

import time

import numpy as np
from sklearn.base import clone

from ..pruning import HEPEx
from .tasks import FINE_TUNE_ITER
from .variants import VARIANTS, default_grid, variant_steps

__all__ = ["sweep", "select_within", "measure_encrypted", "measure_encrypted_many"]


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
        Called with a one-line message after every fitted candidate (its
        ciphertexts, validation score and test score).
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
                         f"{rec['n_ciphertexts']} ct, validation {task.metric} "
                         f"{rec['val_score']:.4f} (test {rec['score']:.4f})")
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


def _spread(values):
    """Half the range of ``values`` relative to their median (0 for one value)."""
    med = float(np.median(values))
    return float((np.max(values) - np.min(values)) / 2 / med) if med > 0 else 0.0


def measure_encrypted_many(models, X, *, plain_predictions=None, repeats=5,
                           mode="encrypted", verbose=0, progress=None):
    """Encrypted inference of several fitted models on ``X``, timed fairly.

    Every model is compiled and run once untimed (the warm-up, whose
    predictions give the agreement), then the timed runs are interleaved:
    ``repeats`` rounds, each running every model once, so that a burst of
    load on the machine slows all the models alike. Latencies are the
    medians of the timed runs, reported with their spread.

    Parameters
    ----------
    models : dict of str to estimator
        Fitted :class:`~skhepex.pruning.HEPEx` or skhepex networks, by name.
    X : ndarray of shape (n_samples, n_features)
        Samples (already scaled).
    plain_predictions : dict of str to ndarray, default=None
        Plaintext predictions to compare with, by name; a missing name uses
        ``model.predict(X)``.
    repeats : int, default=5
        Timed runs per model (at least 1; 3 or more give a meaningful median).
    mode : {"encrypted", "simulate"}, default="encrypted"
        Passed to :class:`~skhepex.HEPredictor` (``"simulate"`` runs the
        same packing on NumPy without keys, and is timed with ``predict``).
    verbose : int, default=0
        Passed to the predictors.
    progress : callable, default=None
        Called with one message per compiled model.

    Returns
    -------
    results : dict of str to dict
        By name, as :func:`measure_encrypted` returns.
    """
    from ..he import HEPredictor  # TenSEAL is loaded only when measuring

    if int(repeats) < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats!r}.")
    plain_predictions = plain_predictions or {}
    runs, out = {}, {}
    for name, model in models.items():
        t0 = time.perf_counter()
        he = HEPredictor(model, prefit=True, mode=mode, verbose=verbose).fit()
        compile_s = time.perf_counter() - t0
        y_he = he.predict(X)                               # warm-up, untimed
        y_plain = plain_predictions.get(name)
        out[name] = _untimed_result(he, model, X, y_he,
                                    model.predict(X) if y_plain is None else y_plain)
        out[name]["compile_seconds"] = compile_s
        runs[name] = (he, [], [])
        if progress is not None:
            progress(f"compiled {name}: {out[name]['n_weight_ciphertexts']} weight "
                     f"ciphertexts, agreement {100 * out[name]['agreement']:.1f}%")
    for _ in range(int(repeats)):
        for name, (he, wall, measured) in runs.items():
            t0 = time.perf_counter()
            if mode == "simulate":                         # measure() needs keys
                he.predict(X)
            else:
                measured.append(he.measure(X).measured)
            wall.append(time.perf_counter() - t0)
    for name, (he, wall, measured) in runs.items():
        per_sample = np.asarray(wall) / len(X)
        out[name].update({
            "repeats": int(repeats),
            "end_to_end_seconds": float(np.median(wall)),
            "seconds_per_sample": float(np.median(per_sample)),
            "seconds_per_sample_runs": per_sample.tolist(),
            "seconds_per_sample_min": float(per_sample.min()),
            "seconds_per_sample_max": float(per_sample.max()),
            "spread": _spread(per_sample),
        })
        for key, src in (("server_seconds_per_batch", "seconds_per_batch"),
                         ("server_seconds_per_sample", "seconds_per_sample"),
                         ("encrypt_seconds", "encrypt_seconds"),
                         ("decrypt_seconds", "decrypt_seconds")):
            values = [m.get(src) for m in measured]
            out[name][key] = (float(np.median(values)) if values
                              and all(v is not None for v in values) else None)
    return out


def _untimed_result(he, model, X, y_he, y_plain):
    """The parts of a measurement that do not depend on timing."""
    rep = he.report_
    out = {
        "n_samples": int(len(X)),
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


def measure_encrypted(model, X, *, plain_predictions=None, repeats=5, mode="encrypted",
                      verbose=0):
    """Encrypted inference of a fitted model on ``X``, measured.

    The model is compiled, run once untimed (the warm-up, whose predictions
    give the agreement), then timed ``repeats`` times; latencies are the
    medians. TenSEAL is imported only when this function is called.

    Parameters
    ----------
    model : estimator
        A fitted :class:`~skhepex.pruning.HEPEx` or skhepex network.
    X : ndarray of shape (n_samples, n_features)
        Samples (already scaled).
    plain_predictions : ndarray of shape (n_samples,) or (n_samples, n_outputs), default=None
        Plaintext predictions to compare with; ``None`` uses
        ``model.predict(X)``.
    repeats : int, default=5
        Timed runs after the warm-up.
    mode : {"encrypted", "simulate"}, default="encrypted"
        Passed to :class:`~skhepex.HEPredictor` (``"simulate"`` runs the same
        packing on NumPy, without keys).
    verbose : int, default=0
        Passed to the predictor.

    Returns
    -------
    result : dict
        Latency: ``"seconds_per_sample"`` (median over the timed runs of the
        end-to-end time -- preprocess, encrypt, evaluate, decrypt -- divided
        by the samples), every run under ``"seconds_per_sample_runs"``, their
        ``"seconds_per_sample_min"``/``"_max"`` and ``"spread"`` (half the
        range over the median), the median server time per batch and per
        sample and of encryption and decryption (``None`` in simulate mode),
        the predicted time per batch and ``"compile_seconds"``; memory
        (``"packed_model_bytes"``, ``"galois_key_bytes"``); weight
        ciphertexts, samples per ciphertext, the CKKS parameters,
        the tile shape, ``"agreement"`` with the plaintext predictions
        (fraction of equal labels for classifiers, of outputs within 1e-3
        otherwise, then also ``"max_abs_diff"``) and the full cost report
        under ``"report"``.
    """
    plain = None if plain_predictions is None else {"model": plain_predictions}
    return measure_encrypted_many({"model": model}, X, plain_predictions=plain,
                                  repeats=repeats, mode=mode, verbose=verbose)["model"]
