"""Plots in scikit-learn's *Display* style (matplotlib is an optional extra).

Two displays:

- :class:`TileMapDisplay` draws the tile grid of every weight layer (kept vs
  empty tiles, optionally coloured by tile norm), one subplot per layer and one
  row per estimator, straight from :class:`~skhepex.tiling.TileLayout`.
- :class:`ParetoDisplay` draws weight ciphertexts (non-zero tiles) against a
  score, one marker set per pruning variant, with the Pareto front
  highlighted; from ``GridSearchCV.cv_results_`` or from benchmark JSON.

Like scikit-learn's displays, each has a ``plot(ax=None, ...)`` method that
returns the display with its matplotlib objects in ``ax_`` and ``figure_``,
and ``from_*`` class methods that compute the data and plot in one call.
matplotlib is imported only inside the plotting methods; install it with
``pip install "skhepex[plot]"``.
"""

import json
import os
from numbers import Real

import numpy as np

from .tiling import TileLayout

__all__ = ["TileMapDisplay", "ParetoDisplay", "pareto_front"]

_PLOT_EXTRA = 'pip install "skhepex[plot]"'


def _import_pyplot():
    """Import ``matplotlib.pyplot`` lazily, with an actionable error."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised with a monkeypatch
        raise ImportError(
            "skhepex's plotting displays need matplotlib, which is an optional "
            f"dependency; install it with: {_PLOT_EXTRA}") from exc
    return plt


# ------------------------------------------------------------------ tile maps
def _tile_edges(n, block):
    """Tile boundaries ``0, block, 2 * block, ..., n`` (last tile may be ragged)."""
    edges = list(range(0, n, block)) + [n]
    return np.asarray(edges, dtype=float)


class TileMapDisplay:
    """Tile map of the weight layers of one or more networks.

    Every weight layer is drawn as the (out, in) matrix the HE engine
    multiplies, cut into its tile grid: kept (non-zero) tiles are filled,
    empty tiles -- skipped by encrypted inference -- are left blank. Each
    subplot is titled with the layer name, its orientation (``"W"`` or
    ``"WT"``, see :class:`~skhepex.tiling.TileLayout`) and the count of
    non-zero tiles over all tiles. Several networks (e.g. before and after
    permutation) are drawn as rows of one grid of subplots.

    Use :meth:`from_estimator` or :meth:`from_estimators` to build and plot
    in one call; the constructor only stores the data.

    Parameters
    ----------
    layers : list of LayerTiling, or list of lists of LayerTiling
        The layers to draw (``TileLayout(...).layers``); a list of lists
        draws one row per inner list.
    tile_values : list of ndarray, or list of lists of ndarray, default=None
        Per-tile values (same nesting as ``layers``, each of shape
        ``layer.grid``) used when plotting with ``color="norm"``, typically
        the tile L2 norms.
    estimator_names : list of str, default=None
        Row labels, one per row.

    Attributes
    ----------
    ax_ : ndarray of matplotlib Axes of shape (n_rows, n_cols)
        The subplots, ``ax_[i, j]`` showing layer ``j`` of row ``i``; panels
        beyond a row's last layer are hidden.
    axes_ : ndarray of matplotlib Axes of shape (n_rows, n_cols)
        Same as ``ax_`` (the name scikit-learn's multi-axes displays use).
    figure_ : matplotlib Figure
        Figure holding the subplots.
    meshes_ : ndarray of object of shape (n_rows, n_cols)
        The ``QuadMesh`` of every drawn layer (``None`` where no layer is
        drawn). Its array holds one value per tile: 1/0 for kept/empty with
        ``color="mask"``, the tile value (masked where empty) with
        ``color="norm"``.
    colorbar_ : matplotlib Colorbar or None
        Colour bar of the tile values (``color="norm"`` only).

    See Also
    --------
    skhepex.tiling.TileLayout : The tiling drawn here.
    ParetoDisplay : Ciphertexts against score.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from skhepex import MLPClassifier
    >>> from skhepex.plotting import TileMapDisplay
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=5).fit(X / 16, y)
    >>> disp = TileMapDisplay.from_estimator(clf, tile_shape=(8, 8))
    >>> disp.ax_.shape
    (1, 2)
    """

    def __init__(self, layers, *, tile_values=None, estimator_names=None):
        self.layers = layers
        self.tile_values = tile_values
        self.estimator_names = estimator_names

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _nest(items):
        """Return ``items`` as a list of rows (lists)."""
        if items is None:
            return None
        items = list(items)
        if items and all(isinstance(row, (list, tuple)) for row in items):
            return [list(row) for row in items]
        return [items]

    @classmethod
    def _layout_data(cls, estimator, tile_shape, color):
        layout = TileLayout(estimator, tile_shape)
        values = None
        if color == "norm":
            values = [layout.tile_norms(i) for i in range(len(layout.layers))]
        return layout.layers, values

    @staticmethod
    def _check_color(color):
        if color not in ("mask", "norm"):
            raise ValueError(f"color must be 'mask' or 'norm'; got {color!r}.")

    # --------------------------------------------------------------- plot
    def plot(self, ax=None, *, color="mask", cmap=None, kept_color="tab:blue",
             empty_color="white", grid_color="0.6", colorbar=True):
        """Draw the tile maps.

        Parameters
        ----------
        ax : matplotlib Axes or array-like of Axes, default=None
            Where to draw: one Axes per (row, layer) panel, given in row-major
            order (e.g. the array returned by ``plt.subplots``, or one row of
            it to compose several displays in one figure). ``None`` creates a
            figure with ``n_rows x n_cols`` subplots.
        color : {"mask", "norm"}, default="mask"
            ``"mask"`` fills kept tiles with ``kept_color``; ``"norm"``
            colours kept tiles by ``tile_values`` (needs ``tile_values``).
        cmap : str or Colormap, default=None
            Colormap for ``color="norm"`` (default ``"viridis"``).
        kept_color : color, default="tab:blue"
            Fill of kept tiles with ``color="mask"``.
        empty_color : color, default="white"
            Fill of empty tiles.
        grid_color : color, default="0.6"
            Colour of the tile boundaries.
        colorbar : bool, default=True
            Add a colour bar (``color="norm"`` only).

        Returns
        -------
        display : TileMapDisplay
            This display, with ``ax_``, ``figure_`` and ``meshes_`` set.
        """
        plt = _import_pyplot()
        from matplotlib.colors import ListedColormap
        from matplotlib.ticker import MaxNLocator

        self._check_color(color)
        rows = self._nest(self.layers)
        values = self._nest(self.tile_values)
        if color == "norm" and values is None:
            raise ValueError("color='norm' needs tile_values; build the display with "
                             "from_estimator(..., color='norm').")
        n_rows = len(rows)
        n_cols = max((len(r) for r in rows), default=0)
        if n_cols == 0:
            raise ValueError("No weight layer to draw.")
        names = self.estimator_names
        if names is not None and len(names) != n_rows:
            raise ValueError(f"estimator_names has {len(names)} entries for {n_rows} rows.")

        if ax is None:
            # one weight = the same length in every panel: column widths follow the
            # widest matrix of the column, row heights the tallest of the row
            widths = [max(row[j].matrix_shape[1] for row in rows if j < len(row))
                      for j in range(n_cols)]
            heights = [max(lt.matrix_shape[0] for lt in row) for row in rows]
            fig_w = min(14.0, max(4.0, 3.2 * n_cols))
            fig_h = 0.8 * fig_w * sum(heights) / sum(widths) + 0.9 * n_rows
            fig, axes = plt.subplots(
                n_rows, n_cols, squeeze=False, figsize=(fig_w, min(max(fig_h, 2.5), 14.0)),
                layout="constrained",
                gridspec_kw={"width_ratios": widths, "height_ratios": heights})
        else:
            axes = np.asarray(ax, dtype=object).ravel()
            if axes.size != n_rows * n_cols:
                raise ValueError(f"ax must hold {n_rows * n_cols} Axes (rows x layers = "
                                 f"{n_rows} x {n_cols}); got {axes.size}.")
            axes = axes.reshape(n_rows, n_cols)
            fig = axes[0, 0].figure

        vmax = None
        if color == "norm":
            finite = [np.max(v) for row in values for v in row if np.size(v)]
            vmax = max(finite) if finite else 1.0
            vmax = vmax if vmax > 0 else 1.0
            cmap_obj = plt.get_cmap(cmap or "viridis").with_extremes(bad=empty_color)
        else:
            cmap_obj = ListedColormap([empty_color, kept_color])

        meshes = np.empty((n_rows, n_cols), dtype=object)
        last_mesh = None
        for i, row in enumerate(rows):
            for j in range(n_cols):
                a = axes[i, j]
                if j >= len(row):
                    a.set_visible(False)
                    continue
                lt = row[j]
                mask = np.asarray(lt.tile_mask, dtype=bool)
                n_out, n_in = lt.matrix_shape
                r, c = lt.block_shape
                yedges, xedges = _tile_edges(n_out, r), _tile_edges(n_in, c)
                if color == "mask":
                    data = mask.astype(float)
                    kw = {"vmin": 0.0, "vmax": 1.0}
                else:
                    data = np.ma.masked_where(~mask, np.asarray(values[i][j], dtype=float))
                    kw = {"vmin": 0.0, "vmax": vmax}
                mesh = a.pcolormesh(xedges, yedges, data, cmap=cmap_obj,
                                    edgecolors=grid_color, linewidth=0.4, **kw)
                meshes[i, j] = mesh
                last_mesh = mesh
                a.set_xlim(0, n_in)
                a.set_ylim(n_out, 0)
                a.set_aspect("equal")
                a.set_title(f"{lt.name} ({lt.orientation})\n"
                            f"{int(mask.sum())}/{mask.size} tiles", fontsize=9)
                a.set_xlabel("in", fontsize=8)
                a.tick_params(labelsize=7)
                a.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
                a.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
                if j == 0:
                    label = "out"
                    if names is not None:
                        label = f"{names[i]}\nout"
                    a.set_ylabel(label, fontsize=8)

        self.colorbar_ = None
        if color == "norm" and colorbar and last_mesh is not None:
            self.colorbar_ = fig.colorbar(last_mesh, ax=axes.ravel().tolist(),
                                          label="tile L2 norm", shrink=0.8)
        self.ax_ = axes
        self.axes_ = axes
        self.figure_ = fig
        self.meshes_ = meshes
        return self

    # --------------------------------------------------------- constructors
    @classmethod
    def from_layout(cls, layout, *, color="mask", estimator_name=None, ax=None, **kwargs):
        """Plot the tile map of a :class:`~skhepex.tiling.TileLayout`.

        Parameters
        ----------
        layout : TileLayout
            The tiling to draw.
        color : {"mask", "norm"}, default="mask"
            Fill kept tiles uniformly, or colour them by their L2 norm.
        estimator_name : str, default=None
            Row label.
        ax : matplotlib Axes or array-like of Axes, default=None
            One Axes per layer; ``None`` creates a figure.
        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : TileMapDisplay
            The plotted display.
        """
        cls._check_color(color)
        values = None
        if color == "norm":
            values = [layout.tile_norms(i) for i in range(len(layout.layers))]
        disp = cls(layout.layers, tile_values=values,
                   estimator_names=None if estimator_name is None else [estimator_name])
        return disp.plot(ax=ax, color=color, **kwargs)

    @classmethod
    def from_estimator(cls, estimator, tile_shape=None, *, color="mask",
                       estimator_name=None, ax=None, **kwargs):
        """Plot the tile map of a fitted network.

        Parameters
        ----------
        estimator : estimator
            A fitted skhepex network, or a ``Pipeline`` / ``HEPEx`` ending in
            one (unwrapped by :class:`~skhepex.tiling.TileLayout`).
        tile_shape : tuple of int (t1, t2), default=None
            Tile shape; defaults to the ``HEPEx``'s, else (8, 8).
        color : {"mask", "norm"}, default="mask"
            Fill kept tiles uniformly, or colour them by their L2 norm.
        estimator_name : str, default=None
            Row label.
        ax : matplotlib Axes or array-like of Axes, default=None
            One Axes per layer; ``None`` creates a figure.
        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : TileMapDisplay
            The plotted display.
        """
        return cls.from_layout(TileLayout(estimator, tile_shape), color=color,
                               estimator_name=estimator_name, ax=ax, **kwargs)

    @classmethod
    def from_estimators(cls, estimators, tile_shape=None, *, color="mask", ax=None,
                        **kwargs):
        """Plot several networks as rows of one grid (rows = networks, cols = layers).

        Typical use: the same network before and after :class:`~skhepex.Permuter`,
        to see the surviving weights gathered into fewer tiles.

        Parameters
        ----------
        estimators : dict of str to estimator, or list of (str, estimator)
            Row label and fitted network (or ``Pipeline`` / ``HEPEx``) of
            every row, in order.
        tile_shape : tuple of int (t1, t2), default=None
            Tile shape for all rows; ``None`` lets every row use its
            ``HEPEx``'s tile shape, else (8, 8).
        color : {"mask", "norm"}, default="mask"
            Fill kept tiles uniformly, or colour them by their L2 norm (one
            colour scale for the whole grid).
        ax : array-like of matplotlib Axes, default=None
            ``n_rows x n_layers`` Axes; ``None`` creates a figure.
        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : TileMapDisplay
            The plotted display; ``ax_[i, j]`` is layer ``j`` of network ``i``.
        """
        cls._check_color(color)
        items = list(estimators.items()) if isinstance(estimators, dict) else list(estimators)
        if not items:
            raise ValueError("estimators is empty.")
        names, layers, values = [], [], []
        for name, est in items:
            lay, val = cls._layout_data(est, tile_shape, color)
            names.append(str(name))
            layers.append(list(lay))
            values.append(val)
        disp = cls(layers, tile_values=values if color == "norm" else None,
                   estimator_names=names)
        return disp.plot(ax=ax, color=color, **kwargs)


# --------------------------------------------------------------------- pareto
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


def _label(value):
    """Legend label of a grid parameter value (strings as is, objects by repr)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "None"
    return str(value)


_CT_KEYS = ("n_ciphertexts", "n_nonzero_tiles", "ciphertexts", "weight_ciphertexts")
_RECORD_LIST_KEYS = ("records", "results", "rows")


def _records_from(obj):
    """Flatten the tolerated benchmark-JSON layouts into a list of records."""
    if isinstance(obj, list):
        return obj
    if isinstance(obj, dict):
        for key in _RECORD_LIST_KEYS:
            if isinstance(obj.get(key), list):
                return obj[key]
        # {variant: record} or {variant: [records]}
        if obj and all(isinstance(v, (dict, list)) for v in obj.values()):
            out = []
            for variant, val in obj.items():
                for rec in (val if isinstance(val, list) else [val]):
                    if isinstance(rec, dict):
                        out.append({"variant": variant, **rec})
            return out
    raise ValueError(
        "Benchmark JSON must be a list of records, a dict with a 'records' (or "
        "'results'/'rows') list, or a dict mapping variant names to records; got "
        f"{type(obj).__name__}.")


class ParetoDisplay:
    """Weight ciphertexts against score, one marker set per variant, Pareto front.

    Every point is one model (a grid-search candidate or a benchmark run):
    its number of weight ciphertexts (non-zero tiles, x axis, fewer is better)
    and its score (y axis, higher is better). Points are grouped by variant
    (e.g. magnitude only, Hunter-style tiles, PPTE), each variant drawn as
    markers joined in order of ciphertexts; the Pareto front over all points
    is drawn on top.

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

    Attributes
    ----------
    front_ : ndarray of int
        Indices of the Pareto-optimal points (see :func:`pareto_front`),
        sorted by increasing ciphertexts.
    lines_ : dict of str to matplotlib Line2D
        The line of every variant.
    front_line_ : matplotlib Line2D or None
        The Pareto front.
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

    def __init__(self, n_ciphertexts, scores, *, variants=None, score_name="score"):
        self.n_ciphertexts = n_ciphertexts
        self.scores = scores
        self.variants = variants
        self.score_name = score_name

    def plot(self, ax=None, *, front=True, annotate_front=False, legend=True,
             xlabel="weight ciphertexts (non-zero tiles)"):
        """Draw the points and the Pareto front.

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

        Returns
        -------
        display : ParetoDisplay
            This display, with ``ax_``, ``figure_``, ``lines_``,
            ``front_line_`` and ``front_`` set.
        """
        plt = _import_pyplot()
        cts = np.abs(np.asarray(self.n_ciphertexts, dtype=float).ravel())
        sc = np.asarray(self.scores, dtype=float).ravel()
        if cts.shape != sc.shape:
            raise ValueError(f"n_ciphertexts and scores differ in length: "
                             f"{cts.size} != {sc.size}.")
        if self.variants is None:
            var = np.array(["all"] * cts.size, dtype=object)
        else:
            var = np.array([_label(v) for v in self.variants], dtype=object)
            if var.size != cts.size:
                raise ValueError(f"variants has {var.size} entries for {cts.size} points.")

        if ax is None:
            fig, ax = plt.subplots(figsize=(5.5, 4.0), layout="constrained")
        else:
            fig = ax.figure

        self.lines_ = {}
        order_seen = list(dict.fromkeys(var.tolist()))
        for name in order_seen:
            sel = np.flatnonzero((var == name) & np.isfinite(cts) & np.isfinite(sc))
            sel = sel[np.lexsort((sc[sel], cts[sel]))]
            (line,) = ax.plot(cts[sel], sc[sel], marker="o", linestyle="-", alpha=0.8,
                              label=name if self.variants is not None else None)
            self.lines_[name] = line

        self.front_ = pareto_front(cts, sc)
        self.front_line_ = None
        if front and self.front_.size:
            (self.front_line_,) = ax.plot(
                cts[self.front_], sc[self.front_], drawstyle="steps-post", color="black",
                linestyle="--", linewidth=1.2, marker="o", markersize=10,
                markerfacecolor="none", label="Pareto front", zorder=3)
            if annotate_front:
                for i in self.front_:
                    ax.annotate(f"{cts[i]:g}", (cts[i], sc[i]), textcoords="offset points",
                                xytext=(4, 4), fontsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(self.score_name)
        ax.grid(True, alpha=0.3)
        if legend and (self.variants is not None or self.front_line_ is not None):
            ax.legend(fontsize=8)
        self.ax_ = ax
        self.figure_ = fig
        return self

    @classmethod
    def from_cv_results(cls, cv_results, *, score_key="mean_test_score",
                        ciphertexts_key="mean_test_ciphertexts", variant_param=None,
                        score_name=None, ax=None, **kwargs):
        """Plot a multi-metric grid search (``GridSearchCV.cv_results_``).

        The search must score ciphertexts, e.g. with
        ``scoring=skhepex.pruning.hepex_scoring()``, whose
        ``"ciphertexts"`` metric is :func:`~skhepex.pruning.ciphertext_scorer`:
        it returns **minus** the number of non-zero tiles so that greater is
        better. The display plots the absolute value.

        Parameters
        ----------
        cv_results : dict
            ``search.cv_results_`` (or any mapping of the same form; a
            ``GridSearchCV`` itself is also accepted).
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
        ax : matplotlib Axes, default=None
            Axes to draw on; ``None`` creates a figure.
        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : ParetoDisplay
            The plotted display.
        """
        if hasattr(cv_results, "cv_results_"):
            cv_results = cv_results.cv_results_
        for key in (score_key, ciphertexts_key):
            if key not in cv_results:
                avail = sorted(k for k in cv_results if k.startswith("mean_test"))
                raise KeyError(f"{key!r} is not in cv_results; available test means: "
                               f"{avail}. Use scoring=hepex_scoring() (metrics 'score' and "
                               "'ciphertexts') or pass score_key / ciphertexts_key.")
        variants = None
        if variant_param is not None:
            key = variant_param if variant_param.startswith("param_") else f"param_{variant_param}"
            if key not in cv_results:
                avail = sorted(k[6:] for k in cv_results if k.startswith("param_"))
                raise KeyError(f"{variant_param!r} is not a searched parameter; "
                               f"parameters: {avail}.")
            col = cv_results[key]
            mask = np.ma.getmaskarray(col) if np.ma.isMaskedArray(col) else None
            variants = ["(unset)" if mask is not None and mask[i] else _label(v)
                        for i, v in enumerate(np.asarray(col, dtype=object))]
        disp = cls(np.asarray(cv_results[ciphertexts_key], dtype=float),
                   np.asarray(cv_results[score_key], dtype=float), variants=variants,
                   score_name=score_name or score_key)
        return disp.plot(ax=ax, **kwargs)

    @classmethod
    def from_json(cls, path_or_data, *, task=None, score_key="score", score_name=None,
                  ax=None, **kwargs):
        """Plot benchmark results from JSON (``skhepex bench`` / ``skhepex demo``).

        Accepted layouts (the benchmark writers conform to this schema):

        - a list of records;
        - a dict with a list under ``"records"`` (or ``"results"``,
          ``"rows"``); other keys (metadata) are ignored;
        - a dict mapping variant names to one record or a list of records.

        Each record is a dict with:

        - ``"variant"`` (str, optional): line label, e.g. ``"dense"``,
          ``"P"``, ``"Hunter"``, ``"PPTE"``; missing means one group;
        - ``"n_ciphertexts"`` (int): weight ciphertexts; if absent,
          ``"n_nonzero_tiles"``, ``"ciphertexts"`` or
          ``"weight_ciphertexts"`` is used; negative values are made
          positive;
        - ``score_key`` (default ``"score"``, float): higher is better (store
          e.g. ``-loss`` or R² for reconstruction tasks);
        - ``"task"`` (str, optional): records of several tasks must be
          separated with ``task=``;
        - ``"metric"`` (str, optional): y-axis label when ``score_name`` is
          not given and all selected records agree.

        Records lacking a ciphertext count or a score are skipped; other keys
        are ignored.

        Parameters
        ----------
        path_or_data : str, path-like, list or dict
            A JSON file path, or the already-loaded data.
        task : str, default=None
            Keep only the records whose ``"task"`` equals this. Required when
            the records span several tasks.
        score_key : str, default="score"
            Record key of the score.
        score_name : str, default=None
            Y-axis label; defaults to the records' ``"metric"`` or
            ``score_key``.
        ax : matplotlib Axes, default=None
            Axes to draw on; ``None`` creates a figure.
        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : ParetoDisplay
            The plotted display.
        """
        data = path_or_data
        if isinstance(data, (str, os.PathLike)):
            with open(data, encoding="utf-8") as fh:
                data = json.load(fh)
        records = [r for r in _records_from(data) if isinstance(r, dict)]
        tasks = sorted({str(r["task"]) for r in records if r.get("task") is not None})
        if task is not None:
            records = [r for r in records if str(r.get("task")) == str(task)]
            if not records:
                raise ValueError(f"No record has task={task!r}; tasks: {tasks}.")
        elif len(tasks) > 1:
            raise ValueError(f"The records span several tasks {tasks}; pick one with task=.")
        cts, scores, variants, metrics = [], [], [], set()
        for rec in records:
            ct = next((rec[k] for k in _CT_KEYS if rec.get(k) is not None), None)
            score = rec.get(score_key)
            if ct is None or score is None or not isinstance(score, Real) \
                    or not isinstance(ct, Real):
                continue
            cts.append(abs(float(ct)))
            scores.append(float(score))
            variants.append(_label(rec.get("variant", "all")))
            if rec.get("metric") is not None:
                metrics.add(str(rec["metric"]))
        if not cts:
            raise ValueError(
                f"No usable record: each needs a ciphertext count (one of {list(_CT_KEYS)}) "
                f"and a numeric {score_key!r}.")
        if score_name is None:
            score_name = metrics.pop() if len(metrics) == 1 else score_key
        has_variants = any(v != "all" for v in variants)
        disp = cls(np.asarray(cts), np.asarray(scores),
                   variants=variants if has_variants else None, score_name=score_name)
        return disp.plot(ax=ax, **kwargs)
