"""The tiling of a fitted network: :class:`TileLayout` and :func:`tile_report`."""

import numpy as np

from ..estimators import get_network, get_tile_shape
from .records import LayerTiling, TileReport
from .shapes import DEFAULT_TILE_SHAPE, block_shape, check_tile_shape, layer_orientation

__all__ = ["TileLayout", "tile_report", "tile_grid_mask", "tile_grid_norms"]


def _contiguous_groups(n_units, unit_size, block):
    """Group consecutive units whose index ranges share a block of ``block``."""
    groups = np.empty(n_units, dtype=int)
    g, last_block = -1, -1
    for u in range(n_units):
        first = (u * unit_size) // block
        if first > last_block:
            g += 1
        groups[u] = g
        last_block = max(last_block, ((u + 1) * unit_size - 1) // block)
    return groups


def _tile_blocks(values, block_shape):
    """``values`` zero-padded to whole tiles, as (tile_row, r, tile_col, c)."""
    r, c = block_shape
    n_out, n_in = values.shape
    gr, gc = -(-n_out // r), -(-n_in // c)
    padded = np.zeros((gr * r, gc * c), dtype=values.dtype)
    padded[:n_out, :n_in] = values
    return padded.reshape(gr, r, gc, c)


def tile_grid_mask(matrix, block_shape):
    """Boolean grid of the ``block_shape`` tiles of ``matrix`` that are non-zero."""
    return _tile_blocks(matrix != 0, block_shape).any(axis=(1, 3))


def tile_grid_norms(matrix, block_shape):
    """Frobenius norm of every ``block_shape`` tile of ``matrix`` (grid-shaped)."""
    m = np.asarray(matrix, dtype=float)
    return np.sqrt((_tile_blocks(m * m, block_shape)).sum(axis=(1, 3)))


class TileLayout:
    """Tiling of every weight layer of a fitted network.

    Parameters
    ----------
    estimator : estimator
        A fitted skhepex network, or a Pipeline / HEPEx ending in one (see
        :func:`skhepex.estimators.get_network`).
    tile_shape : tuple of int (t1, t2), default=None
        Tile shape; defaults to the one ``estimator`` carries (an ``HEPEx``'s,
        see :func:`skhepex.estimators.get_tile_shape`), else (8, 8).

    Attributes
    ----------
    tile_shape : tuple
        The tile shape.
    layers : list of LayerTiling
        One record per weight layer, in order.
    stages : list of skhepex.nn.network.LinearStage
        The network's linear stages (one per weight layer).
    """

    def __init__(self, estimator, tile_shape=None):
        if tile_shape is None:
            tile_shape = get_tile_shape(estimator) or DEFAULT_TILE_SHAPE
        self.tile_shape = check_tile_shape(tile_shape)
        self.estimator = get_network(estimator)
        net = self.estimator.network_
        self.stages = net.stages()
        self._matrices = None
        self.layers = [self._layer(st, i) for i, st in enumerate(self.stages)]

    @staticmethod
    def orientation(index):
        """Orientation of a weight layer; the same as :func:`layer_orientation`.

        Parameters
        ----------
        index : int
            Stage (weight-layer) index, from 0.

        Returns
        -------
        orientation : {"W", "WT"}
            ``"W"`` for even ``index``, ``"WT"`` for odd.
        """
        return layer_orientation(index)

    def block_shape(self, index):
        """Tile block of a weight layer, in (out, in) matrix coordinates.

        Parameters
        ----------
        index : int
            Position of the layer among the weight layers.

        Returns
        -------
        block : tuple of int
            :func:`block_shape` of the layer's orientation and ``tile_shape``.
        """
        return block_shape(layer_orientation(index), self.tile_shape)

    def matrices(self):
        """The matrix and bias of every stage, as the HE engine multiplies them.

        Returns
        -------
        matrices : list of (ndarray, ndarray)
            ``(M, b)`` per stage: ``M`` of shape (out, in) (a convolution's
            unrolled map, pooling folded in) and the bias ``b`` of length
            out. Computed once and cached.
        """
        if self._matrices is None:
            self._matrices = [(st.matrix(), st.bias()) for st in self.stages]
        return self._matrices

    def _layer(self, stage, i):
        layer = stage.weight_layer
        block = self.block_shape(i)
        matrix = self.matrices()[i][0]
        mask = tile_grid_mask(matrix, block)
        grid = mask.shape
        if layer.kind == "dense":
            n_in, n_out = layer.W.shape
            rows = np.arange(n_out) // block[0]
            cols = np.arange(n_in) // block[1]
            units = rows[None, :] * grid[1] + cols[:, None]
            n_units = grid[0] * grid[1]
        else:
            co, ci = layer.W.shape[:2]
            og = _contiguous_groups(co, stage.out_unit_size, block[0])
            ig = _contiguous_groups(ci, stage.in_unit_size, block[1])
            n_ig = ig.max() + 1
            units = np.broadcast_to((og[:, None] * n_ig + ig[None, :])[:, :, None, None],
                                    layer.W.shape).copy()
            n_units = int((og.max() + 1) * n_ig)
        return LayerTiling(
            name=f"{layer.kind}_{i}", index=i, kind=layer.kind,
            weight_shape=tuple(layer.W.shape), matrix_shape=tuple(matrix.shape),
            orientation=self.orientation(i), block_shape=block, grid=tuple(grid),
            tile_mask=mask, weight_units=units, n_units=int(n_units),
            in_unit_size=stage.in_unit_size, out_unit_size=stage.out_unit_size)

    def tile_norms(self, index):
        """Frobenius norm of every tile of weight layer ``index``.

        Parameters
        ----------
        index : int
            Weight-layer index.

        Returns
        -------
        norms : ndarray of shape ``layers[index].grid``
            Non-zero exactly where ``layers[index].tile_mask`` is True.
        """
        return tile_grid_norms(self.matrices()[index][0], self.layers[index].block_shape)

    @property
    def n_tiles(self):
        """int : Tiles over all layers."""
        return sum(layer.n_tiles for layer in self.layers)

    @property
    def n_nonzero_tiles(self):
        """int : Non-zero tiles over all layers (the weight ciphertexts)."""
        return sum(layer.n_nonzero_tiles for layer in self.layers)

    def report(self):
        """Summarise the layout as a :class:`TileReport`.

        Returns
        -------
        report : TileReport
            Tile shape, totals and one record per layer.
        """
        return TileReport(tile_shape=self.tile_shape, n_tiles=self.n_tiles,
                          n_nonzero_tiles=self.n_nonzero_tiles,
                          layers=[layer.to_dict() for layer in self.layers])


def tile_report(estimator, tile_shape=None):
    """Count the weight tiles of a fitted network.

    Parameters
    ----------
    estimator : estimator
        A fitted skhepex network, or a Pipeline / HEPEx ending in one.
    tile_shape : tuple of int (t1, t2), default=None
        Tile shape; defaults to the one ``estimator`` carries (an
        ``HEPEx``'s), else (8, 8).

    Returns
    -------
    report : TileReport
        Totals and one record per weight layer.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skhepex import MLPClassifier, tile_report
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=2).fit(X / 16, y)
    >>> tile_report(clf, (8, 8)).n_tiles   # 32x64 -> 4x8 tiles, 10x32 (cut as 32x10) -> 4x2
    40
    """
    return TileLayout(estimator, tile_shape).report()
