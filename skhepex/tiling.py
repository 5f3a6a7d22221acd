"""The tiling layout: the single source of truth for how weights become tiles.

Under homomorphic encryption every weight matrix is cut into tiles of
``t1 x t2`` slots; one tile is one plaintext (or ciphertext) and one
ciphertext-plaintext multiply, whether it holds one non-zero or all of them.
Pruning, the HE engine and the cost model must agree exactly on the tiles, so
all three ask :class:`TileLayout`.

Orientation
-----------
Consecutive weight layers alternate orientation, as in HElayers' tile tensors.
Layer 0 cuts its matrix ``W`` of shape (out, in) into ``(t1, t2)`` blocks
(orientation ``"W"``); layer 1 cuts ``W.T`` into ``(t1, t2)`` blocks, i.e.
``(t2, t1)`` blocks of ``W`` (orientation ``"WT"``); and so on. Why: inside a
ciphertext a tile is laid out as ``t2`` outer by ``t1`` inner slots. A ``"W"``
layer reduces over the outer dimension, whose rotations wrap around the whole
ciphertext, so its output comes out *replicated* along the outer dimension and
indexed along the inner one -- exactly the input a ``"WT"`` layer needs, with
no mask and no extra rotation. Only after a ``"WT"`` layer must the result be
masked and re-replicated. The alternation halves the masking work and the
multiplicative depth compared with using one orientation everywhere. It also
means the same hidden layer is cut by ``t1`` on both of its sides (rows of
layer ``l`` and columns of layer ``l + 1``), which the permuter relies on.

Convolutions
------------
A convolution (with the average pooling that follows it) is a linear map; the
HE engine multiplies its unrolled matrix (channel-major rows and columns), so
its tiles are tiles of that matrix. Its *pruning unit* is a block of kernels
``W[o_group, i_group]``: the output channels whose matrix rows share a tile
row, times the input channels whose columns share a tile column. When a unit
is all-zero, every tile it touches loses that kernel's contribution; tiles
touched only by zero units are skipped by the engine. When tile sizes divide
the channel sizes (the default CNN on 8x8 digits), a unit is one ``k x k``
kernel.
"""

from dataclasses import dataclass, field
from numbers import Integral

import numpy as np

from .estimators.contract import get_network, get_tile_shape

__all__ = ["TileLayout", "LayerTiling", "TileReport", "tile_report", "check_tile_shape",
           "layer_orientation", "block_shape"]

#: Most slots a tile may have: a CKKS ciphertext at 128-bit security holds at
#: most N/2 = 16384 slots (N = 32768, the largest ring dimension the HE
#: standard allows at that security level), and a tile must fit in one.
MAX_TILE_SLOTS = 16384

#: Tile shape used when none is given and the estimator carries none.
DEFAULT_TILE_SHAPE = (8, 8)


def check_tile_shape(tile_shape):
    """Validate a tile shape; return it as a pair of Python ints.

    Parameters
    ----------
    tile_shape : tuple of int (t1, t2)
        Tile shape: two integers (Python or NumPy; not bools, floats or
        strings), each a power of two, with ``t1 * t2`` at most
        :data:`MAX_TILE_SLOTS`.

    Returns
    -------
    tile_shape : tuple of int
        ``(t1, t2)``.

    Raises
    ------
    ValueError
        If ``tile_shape`` is not a pair of ints, has a side below 1 or not a
        power of two, or more slots than a ciphertext holds. Raised before
        anything is allocated.
    """
    pair = None
    if not isinstance(tile_shape, (str, bytes)):
        try:
            pair = tuple(tile_shape)
        except TypeError:
            pair = None
    if pair is None or len(pair) != 2:
        raise ValueError(f"tile_shape must be a pair (t1, t2) of ints; got {tile_shape!r}.")
    for v in pair:
        if not isinstance(v, Integral) or isinstance(v, (bool, np.bool_)):
            raise ValueError(
                f"tile_shape must be a pair (t1, t2) of ints; got {tile_shape!r} "
                f"(element {v!r} of type {type(v).__name__}).")
    t1, t2 = int(pair[0]), int(pair[1])
    if t1 < 1 or t2 < 1 or t1 & (t1 - 1) or t2 & (t2 - 1):
        raise ValueError(
            f"tile_shape must be a pair of powers of two (the HE engine sums inside a tile "
            f"with rotations by powers of two); got {tile_shape!r}.")
    if t1 * t2 > MAX_TILE_SLOTS:
        raise ValueError(
            f"tile_shape {(t1, t2)} has {t1 * t2} slots, more than the {MAX_TILE_SLOTS} slots "
            "of the largest CKKS ciphertext at 128-bit security (N=32768); a tile must fit "
            "in one ciphertext.")
    return t1, t2


def layer_orientation(index):
    """Orientation of weight layer ``index``: the alternation rule.

    Parameters
    ----------
    index : int
        Weight-layer (stage) index, from 0.

    Returns
    -------
    orientation : {"W", "WT"}
        ``"W"`` for even ``index`` (the (out, in) matrix is cut into
        ``(t1, t2)`` blocks), ``"WT"`` for odd ``index`` (its transpose is).
    """
    return "W" if int(index) % 2 == 0 else "WT"


def block_shape(orientation, tile_shape):
    """Tile block in (out, in) matrix coordinates for an orientation.

    Parameters
    ----------
    orientation : {"W", "WT"}
        Layer orientation, see :func:`layer_orientation`.
    tile_shape : tuple of int (t1, t2)
        Tile shape.

    Returns
    -------
    block : tuple of int
        ``(t1, t2)`` for ``"W"``, ``(t2, t1)`` for ``"WT"``.
    """
    t1, t2 = tile_shape
    if orientation == "W":
        return (int(t1), int(t2))
    if orientation == "WT":
        return (int(t2), int(t1))
    raise ValueError(f"orientation must be 'W' or 'WT'; got {orientation!r}.")


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


@dataclass
class LayerTiling:
    """Tiling of one weight layer.

    Attributes
    ----------
    name : str
        ``"dense_<i>"`` or ``"conv_<i>"`` (``i`` is the weight-layer index).
    index : int
        Weight-layer index.
    kind : {"dense", "conv"}
        Layer type.
    weight_shape : tuple
        Shape of the weight tensor (``coefs_[index]``).
    matrix_shape : tuple
        Shape (out, in) of the matrix the HE engine multiplies.
    orientation : {"W", "WT"}
        Whether the matrix or its transpose is cut into ``tile_shape`` blocks.
    block_shape : tuple
        Tile block in (out, in) coordinates: ``tile_shape`` for ``"W"``,
        reversed for ``"WT"``.
    grid : tuple
        Number of tile rows and tile columns.
    tile_mask : ndarray of bool of shape ``grid``
        Non-zero tiles (to be stored and multiplied).
    weight_units : ndarray of int, shape ``weight_shape``
        Pruning unit of every weight; for a dense layer the unit is the tile
        (``p * grid[1] + q``).
    n_units : int
        Number of pruning units.
    in_unit_size, out_unit_size : int
        Matrix columns per input neuron and rows per output neuron (the
        channel size for convolutions, 1 for dense layers).
    """

    name: str
    index: int
    kind: str
    weight_shape: tuple
    matrix_shape: tuple
    orientation: str
    block_shape: tuple
    grid: tuple
    tile_mask: np.ndarray = field(repr=False)
    weight_units: np.ndarray = field(repr=False)
    n_units: int
    in_unit_size: int
    out_unit_size: int

    @property
    def n_tiles(self):
        """int : Tiles in the grid."""
        return int(self.grid[0] * self.grid[1])

    @property
    def n_nonzero_tiles(self):
        """int : Tiles holding at least one non-zero weight."""
        return int(self.tile_mask.sum())

    def tile_slices(self, p, q):
        """Row and column slices of tile ``(p, q)`` in the (out, in) matrix."""
        r, c = self.block_shape
        return (slice(p * r, min((p + 1) * r, self.matrix_shape[0])),
                slice(q * c, min((q + 1) * c, self.matrix_shape[1])))

    def to_dict(self):
        """Summary record (JSON-friendly)."""
        return {
            "name": self.name, "kind": self.kind,
            "weight_shape": list(self.weight_shape),
            "matrix_shape": list(self.matrix_shape),
            "orientation": self.orientation, "block_shape": list(self.block_shape),
            "grid": list(self.grid), "n_tiles": self.n_tiles,
            "n_nonzero_tiles": self.n_nonzero_tiles,
        }


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
        """Orientation of weight layer ``index`` (see :func:`layer_orientation`)."""
        return layer_orientation(index)

    def block_shape(self, index):
        """Tile block of weight layer ``index``, (out, in) coordinates (:func:`block_shape`)."""
        return block_shape(layer_orientation(index), self.tile_shape)

    def matrices(self):
        """The (matrix, bias) of every stage, as the HE engine multiplies them."""
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
        """Summarise as a :class:`TileReport`."""
        return TileReport(tile_shape=self.tile_shape, n_tiles=self.n_tiles,
                          n_nonzero_tiles=self.n_nonzero_tiles,
                          layers=[layer.to_dict() for layer in self.layers])


@dataclass
class TileReport:
    """Tile counts of a network for one tile shape.

    Attributes
    ----------
    tile_shape : tuple
        The tile shape.
    n_tiles : int
        Tiles over all weight layers.
    n_nonzero_tiles : int
        Non-zero tiles: the weight ciphertexts of encrypted inference.
    layers : list of dict
        One record per weight layer with keys ``name``, ``kind``,
        ``weight_shape``, ``matrix_shape``, ``orientation``, ``block_shape``,
        ``grid``, ``n_tiles``, ``n_nonzero_tiles``.
    """

    tile_shape: tuple
    n_tiles: int
    n_nonzero_tiles: int
    layers: list

    @property
    def tile_sparsity(self):
        """float : Fraction of tiles that are all-zero."""
        return 1.0 - self.n_nonzero_tiles / self.n_tiles if self.n_tiles else 0.0

    def to_dict(self):
        """JSON-friendly dictionary."""
        return {"tile_shape": list(self.tile_shape), "n_tiles": self.n_tiles,
                "n_nonzero_tiles": self.n_nonzero_tiles,
                "tile_sparsity": self.tile_sparsity, "layers": self.layers}

    def __str__(self):
        lines = [f"Tile report, tile shape {self.tile_shape[0]}x{self.tile_shape[1]}",
                 f"{'layer':<10}{'matrix':>12}{'orient':>8}{'grid':>9}{'tiles':>8}{'non-zero':>10}"]
        for rec in self.layers:
            m = "x".join(map(str, rec["matrix_shape"]))
            g = "x".join(map(str, rec["grid"]))
            lines.append(f"{rec['name']:<10}{m:>12}{rec['orientation']:>8}{g:>9}"
                         f"{rec['n_tiles']:>8}{rec['n_nonzero_tiles']:>10}")
        lines.append(f"{'total':<39}{self.n_tiles:>8}{self.n_nonzero_tiles:>10}")
        return "\n".join(lines)


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
