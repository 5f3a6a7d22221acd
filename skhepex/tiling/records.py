"""The records a :class:`~skhepex.tiling.TileLayout` produces: one per layer, one per network."""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["LayerTiling", "TileReport"]


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
        """Row and column slices of one tile in the (out, in) matrix.

        Parameters
        ----------
        p, q : int
            Tile row and tile column, within ``grid``.

        Returns
        -------
        rows, cols : slice
            The matrix entries of tile ``(p, q)`` (shorter at the edges).
        """
        r, c = self.block_shape
        return (slice(p * r, min((p + 1) * r, self.matrix_shape[0])),
                slice(q * c, min((q + 1) * c, self.matrix_shape[1])))

    def to_dict(self):
        """Summary record of the layer (JSON-friendly).

        Returns
        -------
        record : dict
            ``name``, ``kind``, the shapes, ``orientation``, ``grid`` and
            the tile counts; the per-weight arrays are left out.
        """
        return {
            "name": self.name, "kind": self.kind,
            "weight_shape": list(self.weight_shape),
            "matrix_shape": list(self.matrix_shape),
            "orientation": self.orientation, "block_shape": list(self.block_shape),
            "grid": list(self.grid), "n_tiles": self.n_tiles,
            "n_nonzero_tiles": self.n_nonzero_tiles,
        }


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
        """The report as a JSON-friendly dictionary.

        Returns
        -------
        report : dict
            The fields, plus ``tile_sparsity``.
        """
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
