"""The cached stages of :meth:`HEPEx.fit <skhepex.pruning.HEPEx.fit>`.

``HEPEx`` wraps :func:`fit_dense` and :func:`apply_step` in its
``joblib.Memory``: the dense training and every prefix of steps are computed
once per set of parameters and data. Each stage returns its ``history_``
record (:func:`stage_record`).
"""

from ..tiling import TileLayout
from ._base import weight_sparsity

__all__ = ["fit_dense", "apply_step", "stage_record"]

#: Number of dense trainings actually run (cache misses) in this process.
#: Tests read it to check that ``memory`` avoids retraining.
N_DENSE_FITS = 0


def stage_record(name, est, X, y, tile_shape):
    """The ``HEPEx.history_`` record of one stage.

    Parameters
    ----------
    name : str
        Stage name (``"dense"`` or the step's name).
    est : estimator
        The fitted network after the stage.
    X : array-like of shape (n_samples, n_features)
        Training data, scored with ``est.score``.
    y : array-like or None
        Training targets.
    tile_shape : tuple of int (t1, t2)
        Tile shape of the layout counted.

    Returns
    -------
    record : dict
        Keys ``name``, ``sparsity``, ``n_nonzero_tiles``, ``n_tiles`` and
        ``train_score`` (NaN when scoring fails).
    """
    layout = TileLayout(est, tile_shape)
    try:
        score = float(est.score(X, y))
    except Exception:  # pragma: no cover - scoring is informative only
        score = float("nan")
    return {"name": name, "sparsity": weight_sparsity(est),
            "n_nonzero_tiles": layout.n_nonzero_tiles, "n_tiles": layout.n_tiles,
            "train_score": score}


def fit_dense(estimator, X, y, tile_shape):
    """Train ``estimator`` densely (cached by ``HEPEx.memory``).

    Parameters
    ----------
    estimator : estimator
        An unfitted skhepex network (a clone of ``HEPEx.estimator``).
    X : array-like of shape (n_samples, n_features)
        Data ``HEPEx.fit`` received.
    y : array-like or None
        Targets ``HEPEx.fit`` received.
    tile_shape : tuple of int (t1, t2) or None
        Tile shape the record counts tiles with (``None``: not known yet,
        ``HEPEx(tile_shape="auto")`` chooses it from the fitted network).

    Returns
    -------
    estimator : estimator
        ``estimator``, fitted.
    record : dict or None
        Its :func:`stage_record`, named ``"dense"`` (``None`` without a
        tile shape).
    """
    global N_DENSE_FITS
    N_DENSE_FITS += 1
    estimator.fit(X, y)
    if tile_shape is None:
        return estimator, None
    return estimator, stage_record("dense", estimator, X, y, tile_shape)


def apply_step(network, step, name, X, y, tile_shape):
    """Apply one pruning step (cached by ``HEPEx.memory``, keyed on the prefix).

    Parameters
    ----------
    network : estimator
        The fitted network the previous stage returned; it is not modified.
    step : object
        An unfitted clone of the step, with a ``prune`` method.
    name : str
        The step's name in ``HEPEx.steps``.
    X : array-like of shape (n_samples, n_features)
        Data the step fine-tunes on.
    y : array-like or None
        Targets the step fine-tunes on.
    tile_shape : tuple of int (t1, t2)
        Tile shape the step prunes for.

    Returns
    -------
    network : estimator
        The pruned copy of ``network``.
    step : object
        ``step``, fitted (it records its tile counts).
    record : dict
        The :func:`stage_record` of the pruned network.
    """
    out = step.prune(network, X, y, tile_shape=tile_shape)
    return out, step, stage_record(name, out, X, y, tile_shape)
