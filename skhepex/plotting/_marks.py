"""Marks of :class:`~skhepex.plotting.ParetoDisplay`: budget, clipping, chosen points, labels."""

from numbers import Real

import numpy as np

from ._common import label

__all__ = ["annotate_points", "budget_from", "chosen_indices", "clip_floor", "clip_scores",
           "draw_budget", "param_labels", "record_label"]


def budget_from(reference, tolerance, relative=True):
    """Lowest score within ``tolerance`` of ``reference`` (a degradation budget).

    Parameters
    ----------
    reference : float
        Score of the reference model (the dense model, or the best one).
    tolerance : float
        Allowed degradation.
    relative : bool, default=True
        ``reference - tolerance * |reference|`` (a fraction, the rule of
        :func:`~skhepex.pruning.fewest_ciphertexts_within` and of
        ``skhepex demo``) or ``reference - tolerance`` (absolute points).

    Returns
    -------
    budget : float
        The lowest accepted score.
    """
    return float(reference) - float(tolerance) * (abs(float(reference)) if relative else 1.0)


def clip_floor(scores, budget=None, keep=()):
    """Lower y limit that keeps the interesting range of ``scores`` readable.

    With a ``budget``, the axis shows the band between the best score and the
    budget, and as much again below the budget, so that differences near the
    budget stay visible. Without one, points far below the others (below
    ``Q1 - 3 IQR``, Tukey's "far out") are left out of the range. The
    scores at the indices ``keep`` (e.g. the chosen models) always stay in.

    Parameters
    ----------
    scores : array-like of shape (n_points,)
        Scores, higher is better; non-finite ones are ignored.
    budget : float, default=None
        The lowest accepted score.
    keep : array-like of int, default=()
        Indices of points that must stay in range.

    Returns
    -------
    floor : float or None
        The lower limit, or ``None`` when no point lies below it (nothing to
        clip).
    """
    sc = np.asarray(scores, dtype=float).ravel()
    finite = sc[np.isfinite(sc)]
    if finite.size == 0:
        return None
    top = finite.max()
    if budget is not None and np.isfinite(budget):
        band = max(top - float(budget), 1e-3 * max(abs(top), 1.0))
        floor = float(budget) - band
    else:
        q1, q3 = np.percentile(finite, [25, 75])
        floor = q1 - 3.0 * (q3 - q1)
    kept = sc[np.asarray(keep, dtype=int)] if len(keep) else np.empty(0)
    kept = kept[np.isfinite(kept)]
    if kept.size:
        floor = min(floor, kept.min() - 0.1 * max(top - kept.min(), 1e-3))
    return float(floor) if np.any(finite < floor) else None


def clip_scores(scores, clip, budget, chosen):
    """The lower y limit and the scores as drawn (those below it put on it).

    Parameters
    ----------
    scores : ndarray of shape (n_points,)
        Scores.
    clip : "auto", float or None
        See :meth:`~skhepex.plotting.ParetoDisplay.plot`.
    budget : float or None
        The degradation budget.
    chosen : ndarray of int
        Indices of the chosen points (kept in range by ``"auto"``).

    Returns
    -------
    floor : float or None
        The lower limit (``None``: nothing clipped).
    y : ndarray of shape (n_points,)
        ``scores`` with the ones below ``floor`` replaced by ``floor``.
    """
    if isinstance(clip, str) and clip != "auto":
        raise ValueError(f"clip must be 'auto', a number or None, got {clip!r}.")
    floor = clip_floor(scores, budget, chosen) if isinstance(clip, str) else clip
    if floor is None:
        return None, scores
    return float(floor), np.where(np.isfinite(scores) & (scores < floor), floor, scores)


def draw_budget(ax, budget, text):
    """Draw the budget line and shade the scores below it.

    Parameters
    ----------
    ax : matplotlib Axes
        The axes (their y limits are kept).
    budget : float
        The lowest accepted score.
    text : str
        Legend entry of the line.

    Returns
    -------
    line : matplotlib Line2D
        The budget line.
    """
    line = ax.axhline(budget, color="tab:red", linestyle=":", linewidth=1.5, label=text)
    bottom = ax.get_ylim()[0]
    if bottom < budget:
        ax.axhspan(bottom, budget, color="tab:red", alpha=0.06, zorder=0)
        ax.set_ylim(bottom=bottom)
    return line


def chosen_indices(chosen, n):
    """Indices from ``None``, a boolean mask or a sequence of indices."""
    if chosen is None:
        return np.empty(0, dtype=int)
    arr = np.asarray(chosen)
    if arr.dtype == bool:
        if arr.size != n:
            raise ValueError(f"chosen has {arr.size} entries for {n} points.")
        return np.flatnonzero(arr)
    idx = np.atleast_1d(arr).astype(int)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise ValueError(f"chosen index out of range for {n} points: {idx.tolist()}.")
    return idx % n if n else idx

def short(value):
    """Short text of a parameter value: numbers with ``g``, estimators by class."""
    if isinstance(value, Real) and not isinstance(value, bool):
        return f"{value:g}"
    if hasattr(value, "get_params"):
        return type(value).__name__
    return label(value)


def param_labels(params, skip=None):
    """Point labels ``"name=value, ..."`` of the parameters that vary in ``params``."""
    if not params:
        return None
    skip = skip[len("param_"):] if skip else None
    names = [k for k in dict.fromkeys(k for p in params for k in p) if k != skip]
    varying = [k for k in names if len({short(p.get(k)) for p in params}) > 1]
    return [", ".join(f"{k.rsplit('__', 1)[-1]}={short(p[k])}" for k in varying if k in p)
            for p in params]

def record_label(rec):
    """Point label of a record: its ``"label"``, else its non-zero sparsities."""
    if rec.get("label") is not None:
        return label(rec["label"])
    parts = [f"{short}={rec[key]:g}" for key, short in (("sparsity", "s"), ("tile_sparsity", "t"))
             if isinstance(rec.get(key), Real) and rec[key]]
    return " ".join(parts)


def annotate_points(ax, cts, sc, y, texts, colors, chosen, clipped):
    """Write the point labels (left of the rightmost points), stacking overlaps.

    Parameters
    ----------
    ax : matplotlib Axes
        The axes, with the points drawn (its x limits are read).
    cts, sc, y : ndarray of shape (n_points,)
        Ciphertexts, true scores and drawn (clipped) scores.
    texts : list of str
        Label of every point (empty: none).
    colors : list
        Text colour of every point.
    chosen, clipped : ndarray of int
        Indices of the chosen points (bold) and of the clipped ones (their
        label gets their true score).

    Returns
    -------
    annotations : list of matplotlib Annotation
        The labels written.
    """
    left, right = ax.get_xlim()
    span_y = np.ptp(y[np.isfinite(y)]) or 1.0
    annotations = []
    placed = []                      # (x, y) of the labels written, in axis fractions
    for i in np.lexsort((-y, cts)):
        text = texts[i]
        if i in clipped:
            text = f"{text}: {sc[i]:.3g}" if text else f"{sc[i]:.3g}"
        if not text or not (np.isfinite(cts[i]) and np.isfinite(sc[i])):
            continue
        fx, fy = (cts[i] - left) / ((right - left) or 1.0), y[i] / span_y
        n_near = sum(abs(fx - px) < 0.06 and abs(fy - py) < 0.04 for px, py in placed)
        placed.append((fx, fy))
        flip = fx > 0.7                # keep the text inside the axes
        annotations.append(ax.annotate(
            text, (cts[i], y[i]), textcoords="offset points",
            xytext=(-5 if flip else 4, 4 + 8 * n_near), ha="right" if flip else "left",
            fontsize=6.5, color=colors[i],
            fontweight="bold" if i in chosen else "normal", annotation_clip=False))
    return annotations
