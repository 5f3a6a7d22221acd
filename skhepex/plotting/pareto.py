"""Ciphertexts against score: :func:`pareto_front` and :class:`ParetoDisplay`."""

from numbers import Real

import numpy as np

from ._common import fill_doc, import_pyplot, label
from ._marks import (annotate_points, budget_from, chosen_indices, clip_scores, draw_budget,
                     param_labels, record_label)

__all__ = ["ParetoDisplay", "pareto_front"]


#: Last parameters of the ``from_*`` constructors of :class:`ParetoDisplay`.
_AX_KWARGS = """
ax : matplotlib Axes, default=None
    Axes to draw on; ``None`` creates a figure.
**kwargs : dict
    Passed to :meth:`plot`.
"""


def pareto_front(n_ciphertexts, scores):
    """Indices of the Pareto-optimal points: fewest ciphertexts, highest score.

    A point is on the front when no other point has at most as many
    ciphertexts and at least as high a score, with one of the two strictly
    better. Duplicated optimal points are all kept. Non-finite points are
    never on the front.

    Parameters
    ----------
    n_ciphertexts : array-like of shape (n_points,)
        Weight ciphertexts (non-zero tiles) of every point; lower is better.
    scores : array-like of shape (n_points,)
        Score of every point; higher is better.

    Returns
    -------
    front : ndarray of int
        Indices of the front, sorted by increasing ciphertexts.

    Examples
    --------
    >>> from skhepex.plotting import pareto_front
    >>> pareto_front([100, 60, 40, 60, 20], [0.97, 0.96, 0.90, 0.95, 0.80])
    array([4, 2, 1, 0])
    """
    cts = np.asarray(n_ciphertexts, dtype=float).ravel()
    sc = np.asarray(scores, dtype=float).ravel()
    if cts.shape != sc.shape:
        raise ValueError(f"n_ciphertexts and scores differ in length: {cts.size} != {sc.size}.")
    finite = np.isfinite(cts) & np.isfinite(sc)
    idx = np.flatnonzero(finite)
    front = []
    for i in idx:
        le, ge = cts[idx] <= cts[i], sc[idx] >= sc[i]
        strictly = (cts[idx] < cts[i]) | (sc[idx] > sc[i])
        if not np.any(le & ge & strictly):
            front.append(i)
    front = np.asarray(front, dtype=int)
    return front[np.lexsort((-sc[front], cts[front]))] if front.size else front


class ParetoDisplay:
    """Weight ciphertexts against score, one marker set per variant, Pareto front.

    Every point is one model (a grid-search candidate or a benchmark run):
    its number of weight ciphertexts (non-zero tiles, x axis, fewer is better)
    and its score (y axis, higher is better). Points are grouped by variant
    (e.g. magnitude only, Hunter-style tiles, PPTE), each variant drawn as
    markers joined in order of ciphertexts; the Pareto front over all points
    is drawn on top. Optionally, the chosen models are starred, the
    degradation budget is drawn as a line (with the region below it shaded),
    every point is labelled with its settings, and points far below the
    others (collapsed candidates) are drawn on the lower edge, so that the
    interesting range stays readable.

    Parameters
    ----------
    n_ciphertexts : array-like of shape (n_points,)
        Weight ciphertexts of every point (absolute values are used, so the
        negative counts of :func:`~skhepex.pruning.ciphertext_scorer` work).
    scores : array-like of shape (n_points,)
        Score of every point; higher is better.
    variants : array-like of shape (n_points,), default=None
        Variant label of every point; ``None`` puts all points in one group.
    score_name : str, default="score"
        Y-axis label.
    labels : array-like of shape (n_points,), default=None
        Text written next to every point (e.g. its sparsities); ``None`` or
        an empty string writes nothing for a point.
    chosen : array-like of int or of bool, default=None
        Indices (or a mask) of the chosen models, drawn as stars.
    budget : float, default=None
        The degradation budget: the lowest accepted score, drawn as a
        horizontal line (the ``from_*`` constructors compute it from a
        ``tolerance``).
    budget_label : str, default=None
        Legend entry of the budget line; ``None`` writes its value.

    Attributes
    ----------
    front_ : ndarray of int
        Indices of the Pareto-optimal points (see :func:`pareto_front`),
        sorted by increasing ciphertexts.
    lines_ : dict of str to matplotlib Line2D
        The line of every variant.
    front_line_ : matplotlib Line2D or None
        The Pareto front.
    chosen_line_ : matplotlib Line2D or None
        The stars of the chosen models.
    budget_line_ : matplotlib Line2D or None
        The budget line.
    clipped_ : ndarray of int
        Indices of the points drawn on the lower edge (their score is below
        the visible range; their label then states it).
    annotations_ : list of matplotlib Annotation
        The point labels.
    ax_ : matplotlib Axes
        Axes of the plot.
    figure_ : matplotlib Figure
        Figure of the plot.

    See Also
    --------
    skhepex.pruning.fewest_ciphertexts_within : Refit rule that picks a point
        near the front.
    TileMapDisplay : Tile maps of the layers.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skhepex.plotting import ParetoDisplay
    >>> records = [{"variant": "P", "n_ciphertexts": 40, "score": 0.95},
    ...            {"variant": "PPTE", "n_ciphertexts": 22, "score": 0.96}]
    >>> disp = ParetoDisplay.from_json(records)
    >>> disp.front_
    array([1])
    """

    def __init__(self, n_ciphertexts, scores, *, variants=None, score_name="score",
                 labels=None, chosen=None, budget=None, budget_label=None):
        self.n_ciphertexts = n_ciphertexts
        self.scores = scores
        self.variants = variants
        self.score_name = score_name
        self.labels = labels
        self.chosen = chosen
        self.budget = budget
        self.budget_label = budget_label

    def plot(self, ax=None, *, front=True, annotate_front=False, legend=True,
             xlabel="weight ciphertexts (non-zero tiles)", annotate=True, clip="auto"):
        """Draw the points, the Pareto front, the chosen models and the budget.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; ``None`` creates a figure.
        front : bool, default=True
            Highlight the Pareto front.
        annotate_front : bool, default=False
            Write the ciphertext count next to every front point.
        legend : bool, default=True
            Add a legend.
        xlabel : str, default="weight ciphertexts (non-zero tiles)"
            X-axis label.
        annotate : bool, default=True
            Write ``labels`` next to the points.
        clip : "auto", float or None, default="auto"
            Lower limit of the y axis. ``"auto"``: with a ``budget``, the
            axis shows the band between the best score and the budget and as
            much again below it; without one, points far below the others
            (below ``Q1 - 3 IQR``) are left out; the chosen points always
            stay in range, and nothing is clipped when every point fits. A
            float sets the limit; ``None`` shows every point. Points below
            the limit are drawn on the lower edge as downward triangles, and
            their label gives their score.

        Returns
        -------
        display : ParetoDisplay
            This display, with ``ax_``, ``figure_``, ``lines_``,
            ``front_line_``, ``chosen_line_``, ``budget_line_``,
            ``clipped_``, ``annotations_`` and ``front_`` set.
        """
        plt = import_pyplot()
        cts = np.abs(np.asarray(self.n_ciphertexts, dtype=float).ravel())
        sc = np.asarray(self.scores, dtype=float).ravel()
        if cts.shape != sc.shape:
            raise ValueError(f"n_ciphertexts and scores differ in length: "
                             f"{cts.size} != {sc.size}.")
        if self.variants is None:
            var = np.array(["all"] * cts.size, dtype=object)
        else:
            var = np.array([label(v) for v in self.variants], dtype=object)
            if var.size != cts.size:
                raise ValueError(f"variants has {var.size} entries for {cts.size} points.")
        texts = [""] * cts.size if self.labels is None else [
            "" if t is None else label(t) for t in self.labels]
        if len(texts) != cts.size:
            raise ValueError(f"labels has {len(texts)} entries for {cts.size} points.")
        chosen = chosen_indices(self.chosen, cts.size)
        budget = None if self.budget is None else float(self.budget)

        if ax is None:
            fig, ax = plt.subplots(figsize=(7.6, 4.6), layout="constrained")
        else:
            fig = ax.figure
        floor, y = clip_scores(sc, clip, budget, chosen)
        low = np.isfinite(sc) & (y != sc)
        self.clipped_ = np.flatnonzero(low)

        self.lines_ = {}
        for name in dict.fromkeys(var.tolist()):
            sel = np.flatnonzero((var == name) & np.isfinite(cts) & np.isfinite(sc))
            sel = sel[np.lexsort((sc[sel], cts[sel]))]
            (line,) = ax.plot(cts[sel], y[sel], marker="o", linestyle="-", alpha=0.8,
                              label=name if self.variants is not None else None)
            self.lines_[name] = line
            out = sel[low[sel]]
            if out.size:
                ax.plot(cts[out], y[out], marker="v", linestyle="none", markersize=8,
                        color=line.get_color(), clip_on=False, zorder=3)

        self.front_ = pareto_front(cts, sc)
        self.front_line_ = None
        if front and self.front_.size:
            (self.front_line_,) = ax.plot(
                cts[self.front_], y[self.front_], drawstyle="steps-post", color="black",
                linestyle="--", linewidth=1.2, marker="o", markersize=10,
                markerfacecolor="none", label="Pareto front", zorder=3)
            if annotate_front:
                for i in self.front_:
                    ax.annotate(f"{cts[i]:g}", (cts[i], y[i]), textcoords="offset points",
                                xytext=(4, -10), fontsize=7)
        self.chosen_line_ = None
        if chosen.size:
            (self.chosen_line_,) = ax.plot(
                cts[chosen], y[chosen], marker="*", markersize=16, linestyle="none",
                color="gold", markeredgecolor="black", label="chosen", zorder=4,
                clip_on=False)
        self.annotations_ = []
        if annotate:
            self.annotations_ = annotate_points(
                ax, cts, sc, y, texts, [self.lines_[v].get_color() for v in var], chosen,
                self.clipped_)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(self.score_name)
        ax.grid(True, alpha=0.3)
        if floor is not None:
            top = np.nanmax(sc[np.isfinite(sc)])
            ax.set_ylim(floor, top + 0.08 * (top - floor))
        self.budget_line_ = None if budget is None else draw_budget(
            ax, budget, self.budget_label or f"budget ({budget:.4g})")
        if legend and (self.variants is not None or self.front_line_ is not None
                       or self.chosen_line_ is not None or self.budget_line_ is not None):
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      borderaxespad=0.0)
        self.ax_ = ax
        self.figure_ = fig
        return self

    @classmethod
    @fill_doc(ax_kwargs=_AX_KWARGS)
    def from_cv_results(cls, cv_results, *, score_key="mean_test_score",
                        ciphertexts_key="mean_test_ciphertexts", variant_param=None,
                        score_name=None, chosen="best", tolerance="auto", ax=None,
                        **kwargs):
        """Plot a multi-metric grid search (``GridSearchCV.cv_results_``).

        The search must score ciphertexts, e.g. with
        ``scoring=skhepex.pruning.hepex_scoring()``, whose
        ``"ciphertexts"`` metric is :func:`~skhepex.pruning.ciphertext_scorer`:
        it returns **minus** the number of non-zero tiles so that greater is
        better. The display plots the absolute value (the mean over the
        folds, so it need not be an integer). Every candidate is labelled
        with the searched parameters that vary, except ``variant_param``.

        Parameters
        ----------
        cv_results : dict or GridSearchCV
            ``search.cv_results_`` (or any mapping of the same form), or a
            fitted search itself (needed for ``chosen="best"`` and
            ``tolerance="auto"``).
        score_key : str, default="mean_test_score"
            Column of the score (y axis).
        ciphertexts_key : str, default="mean_test_ciphertexts"
            Column of the (negative) ciphertext counts (x axis).
        variant_param : str, default=None
            Parameter whose values define the variants (one line each), with
            or without the ``"param_"`` prefix, e.g. ``"hepex__permute"``.
            Values are labelled by ``str`` (``"passthrough"``,
            ``"Permuter()"``). ``None`` draws all candidates as one set.
        score_name : str, default=None
            Y-axis label; defaults to ``score_key``.
        chosen : "best", int, array-like of int or None, default="best"
            Candidates to star: ``"best"`` is the search's ``best_index_``
            (the refitted model; nothing when ``cv_results`` is a dict).
        tolerance : "auto", float or None, default="auto"
            Draw the degradation budget ``best - tolerance * |best|`` of the
            best mean score (the rule of
            :func:`~skhepex.pruning.fewest_ciphertexts_within`). ``"auto"``
            takes the tolerance (and ``relative``) of the search's refit rule
            when it has them, else draws no budget; ``None`` draws none.
        %(ax_kwargs)s

        Returns
        -------
        display : ParetoDisplay
            The plotted display.
        """
        search = cv_results if hasattr(cv_results, "cv_results_") else None
        if search is not None:
            cv_results = search.cv_results_
        for key in (score_key, ciphertexts_key):
            if key not in cv_results:
                avail = sorted(k for k in cv_results if k.startswith("mean_test"))
                raise KeyError(f"{key!r} is not in cv_results; available test means: "
                               f"{avail}. Use scoring=hepex_scoring() (metrics 'score' and "
                               "'ciphertexts') or pass score_key / ciphertexts_key.")
        variants = None
        key = None
        if variant_param is not None:
            key = variant_param if variant_param.startswith("param_") else f"param_{variant_param}"
            if key not in cv_results:
                avail = sorted(k[6:] for k in cv_results if k.startswith("param_"))
                raise KeyError(f"{variant_param!r} is not a searched parameter; "
                               f"parameters: {avail}.")
            col = cv_results[key]
            mask = np.ma.getmaskarray(col) if np.ma.isMaskedArray(col) else None
            variants = ["(unset)" if mask is not None and mask[i] else label(v)
                        for i, v in enumerate(np.asarray(col, dtype=object))]
        scores = np.asarray(cv_results[score_key], dtype=float)
        if isinstance(chosen, str):
            if chosen != "best":
                raise ValueError(f"chosen must be 'best', indices or None, got {chosen!r}.")
            best = getattr(search, "best_index_", None)
            chosen = None if best is None else [int(best)]
        relative = True
        if isinstance(tolerance, str):
            if tolerance != "auto":
                raise ValueError(f"tolerance must be 'auto', a number or None, "
                                 f"got {tolerance!r}.")
            rule = getattr(search, "refit", None)
            tolerance = getattr(rule, "tolerance", None)
            relative = bool(getattr(rule, "relative", True))
        budget = budget_label = None
        if tolerance is not None and np.isfinite(scores).any():
            budget = budget_from(np.nanmax(scores), tolerance, relative)
            budget_label = (f"budget: {100 * tolerance:g}% below the best" if relative
                            else f"budget: {tolerance:g} below the best")
        disp = cls(np.asarray(cv_results[ciphertexts_key], dtype=float), scores,
                   variants=variants, score_name=score_name or score_key,
                   labels=param_labels(cv_results.get("params"), skip=key),
                   chosen=chosen, budget=budget, budget_label=budget_label)
        return disp.plot(ax=ax, **kwargs)

    @classmethod
    @fill_doc(ax_kwargs=_AX_KWARGS)
    def from_json(cls, path_or_data, *, task=None, score_key="score", score_name=None,
                  tolerance=None, ax=None, **kwargs):
        """Plot benchmark results from JSON (``skhepex bench`` / ``skhepex demo``).

        The JSON is read with :func:`skhepex.experiments.read_records`, which
        documents the accepted layouts and record keys. Every record with a
        numeric ciphertext count (``"n_ciphertexts"`` or one of its aliases,
        :data:`skhepex.experiments.CIPHERTEXT_KEYS`) and a numeric
        ``score_key`` is one point, grouped by its ``"variant"`` (records
        without one form a single group); the other records are skipped.
        Records with a true ``"selected"`` are starred as chosen; each point
        is labelled with its ``"label"``, or else its ``"sparsity"`` (``s``)
        and ``"tile_sparsity"`` (``t``) when they are not zero.

        Parameters
        ----------
        path_or_data : str, path-like, list or dict
            A JSON file path, or the already-loaded data.
        task : str, default=None
            Keep only the records whose ``"task"`` equals this. Required when
            the records span several tasks.
        score_key : str, default="score"
            Record key of the score (higher is better: store e.g. ``-loss``
            or R² for reconstruction tasks); ``"val_score"`` plots the
            validation scores that ``skhepex demo`` selects on.
        score_name : str, default=None
            Y-axis label; defaults to the records' ``"metric"`` when all
            plotted records agree on it, else ``score_key``.
        tolerance : float, default=None
            Draw the degradation budget ``reference - tolerance *
            |reference|``, the reference being the score of the ``"dense"``
            record (the best score when there is none); ``None`` draws none.
        %(ax_kwargs)s

        Returns
        -------
        display : ParetoDisplay
            The plotted display.

        Raises
        ------
        ValueError
            If the JSON layout is not understood, if ``task`` is needed or
            matches no record, or if no record is usable.
        """
        # imported here: the experiments (scikit-learn, the pruning steps) are
        # not needed to import the displays
        from ..experiments import CIPHERTEXT_KEYS, read_records

        cts, scores, variants, metrics, labels, chosen = [], [], [], set(), [], []
        for rec in read_records(path_or_data, task=task):
            ct, score = rec.get("n_ciphertexts"), rec.get(score_key)
            if not isinstance(ct, Real) or not isinstance(score, Real):
                continue
            if rec.get("selected"):
                chosen.append(len(cts))
            cts.append(abs(float(ct)))
            scores.append(float(score))
            variants.append(label(rec.get("variant", "all")))
            labels.append(record_label(rec))
            if rec.get("metric") is not None:
                metrics.add(str(rec["metric"]))
        if not cts:
            raise ValueError(
                f"No usable record: each needs a ciphertext count (one of "
                f"{list(CIPHERTEXT_KEYS)}) and a numeric {score_key!r}.")
        if score_name is None:
            score_name = metrics.pop() if len(metrics) == 1 else score_key
        has_variants = any(v != "all" for v in variants)
        budget = budget_label = None
        if tolerance is not None:
            dense = [sc for sc, v in zip(scores, variants) if v == "dense"]
            budget = budget_from(dense[0] if dense else max(scores), tolerance)
            budget_label = (f"budget: {100 * tolerance:g}% below "
                            f"{'dense' if dense else 'the best'}")
        disp = cls(np.asarray(cts), np.asarray(scores),
                   variants=variants if has_variants else None, score_name=score_name,
                   labels=labels, chosen=chosen, budget=budget, budget_label=budget_label)
        return disp.plot(ax=ax, **kwargs)
