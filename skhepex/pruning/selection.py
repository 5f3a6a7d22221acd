"""Model selection by ciphertext count: a scorer and a GridSearchCV refit rule."""

from numbers import Real

import numpy as np
from sklearn.metrics import check_scoring
from sklearn.utils._param_validation import Interval, validate_params

from ..tiling import TileLayout

__all__ = ["ciphertext_scorer", "fewest_ciphertexts_within", "hepex_scoring"]


def ciphertext_scorer(estimator, X=None, y=None):
    """Minus the number of weight ciphertexts (non-zero tiles); greater is better.

    A scorer with the ``(estimator, X, y)`` signature, for ``GridSearchCV``'s
    multi-metric ``scoring``. The tile shape is the one of the ``HEPEx``
    inside ``estimator`` (default (8, 8)); ``X`` and ``y`` are ignored.

    Parameters
    ----------
    estimator : estimator
        A fitted network, ``HEPEx``, or a ``Pipeline`` ending in one.
    X : array-like, default=None
        Ignored.
    y : array-like, default=None
        Ignored.

    Returns
    -------
    score : float
        ``-n_nonzero_tiles``.
    """
    return -float(TileLayout(estimator).n_nonzero_tiles)


def _estimator_score(estimator, X, y=None):
    return check_scoring(estimator)(estimator, X, y)


def hepex_scoring(score=None):
    """Multi-metric ``scoring`` dict for :func:`fewest_ciphertexts_within`.

    Parameters
    ----------
    score : str or callable, default=None
        Quality metric; ``None`` uses the estimator's own ``score``.

    Returns
    -------
    scoring : dict
        ``{"score": ..., "ciphertexts": ciphertext_scorer}``.
    """
    return {"score": _estimator_score if score is None else score,
            "ciphertexts": ciphertext_scorer}


class _FewestCiphertexts:
    """Picklable refit callable (see :func:`fewest_ciphertexts_within`)."""

    def __init__(self, tolerance, score, ciphertexts, relative):
        self.tolerance = tolerance
        self.score = score
        self.ciphertexts = ciphertexts
        self.relative = relative

    def __call__(self, cv_results):
        scores = np.asarray(cv_results[f"mean_test_{self.score}"], dtype=float)
        cts = np.asarray(cv_results[f"mean_test_{self.ciphertexts}"], dtype=float)
        valid = np.isfinite(scores) & np.isfinite(cts)
        if not valid.any():
            raise ValueError("No candidate has a finite score; cannot refit.")
        best = scores[valid].max()
        slack = self.tolerance * abs(best) if self.relative else self.tolerance
        ok = valid & (scores >= best - slack - 1e-12)
        idx = np.flatnonzero(ok)
        # fewest ciphertexts = largest (least negative) ciphertext score; ties -> higher score
        order = np.lexsort((-scores[idx], -cts[idx]))
        return int(idx[order[0]])

    def __repr__(self):
        return (f"fewest_ciphertexts_within(tolerance={self.tolerance!r}, "
                f"score={self.score!r}, ciphertexts={self.ciphertexts!r}, "
                f"relative={self.relative!r})")


@validate_params(
    {"tolerance": [Interval(Real, 0, None, closed="left")], "score": [str],
     "ciphertexts": [str], "relative": ["boolean"]},
    prefer_skip_nested_validation=True,
)
def fewest_ciphertexts_within(tolerance=0.025, score="score", ciphertexts="ciphertexts",
                              relative=True):
    """Refit rule: the fewest ciphertexts within a degradation of the best score.

    For ``GridSearchCV(..., scoring=hepex_scoring(), refit=...)``: among the
    candidates whose mean test ``score`` is at least
    ``best * (1 - tolerance)`` (``relative=True``, the paper's "within 2.5%
    degradation"; more precisely ``best - tolerance * |best|``) or
    ``best - tolerance`` (``relative=False``, absolute points), pick the one
    with the fewest ciphertexts; ties go to the higher score.

    Parameters
    ----------
    tolerance : float, default=0.025
        Allowed degradation.
    score : str, default="score"
        Name of the quality metric in ``scoring``.
    ciphertexts : str, default="ciphertexts"
        Name of :func:`ciphertext_scorer` in ``scoring``.
    relative : bool, default=True
        Relative (fraction of the best score) or absolute tolerance.

    Returns
    -------
    refit : callable
        ``refit(cv_results) -> best_index``.

    Examples
    --------
    >>> from skhepex import fewest_ciphertexts_within
    >>> rule = fewest_ciphertexts_within(0.025)
    >>> rule({"mean_test_score": [0.98, 0.97, 0.90],
    ...       "mean_test_ciphertexts": [-400, -120, -40]})
    1
    """
    return _FewestCiphertexts(tolerance, score, ciphertexts, relative)
