"""Tile maps of the weight layers: :class:`TileMapDisplay`."""

import numpy as np

from ..tiling import TileLayout
from ._common import fill_doc, import_pyplot

__all__ = ["TileMapDisplay"]


#: Parameters of the one-row constructors :meth:`TileMapDisplay.from_layout`
#: and :meth:`TileMapDisplay.from_estimator`.
_ROW_PARAMS = """
color : {"mask", "norm"}, default="mask"
    Fill kept tiles uniformly, or colour them by their L2 norm.
estimator_name : str, default=None
    Row label.
ax : matplotlib Axes or array-like of Axes, default=None
    One Axes per layer; ``None`` creates a figure.
**kwargs : dict
    Passed to :meth:`plot`.
"""


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
        plt = import_pyplot()
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
    @fill_doc(row_params=_ROW_PARAMS)
    def from_layout(cls, layout, *, color="mask", estimator_name=None, ax=None, **kwargs):
        """Plot the tile map of a :class:`~skhepex.tiling.TileLayout`.

        Parameters
        ----------
        layout : TileLayout
            The tiling to draw.
        %(row_params)s

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
    @fill_doc(row_params=_ROW_PARAMS)
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
        %(row_params)s

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
