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

from ..lazy import attach

#: Public name -> module, imported on first access (PEP 562): the shape helpers
#: (:mod:`~skhepex.tiling.shapes`) load without :class:`TileLayout` and the
#: estimators (scikit-learn), which an encrypted-inference server does not need.
_LAZY = {
    "TileLayout": ".layout", "tile_grid_mask": ".layout", "tile_grid_norms": ".layout",
    "tile_report": ".layout", "LayerTiling": ".records", "TileReport": ".records",
    "DEFAULT_TILE_SHAPE": ".shapes", "MAX_TILE_SLOTS": ".shapes", "block_shape": ".shapes",
    "check_tile_shape": ".shapes", "layer_orientation": ".shapes",
}

__all__ = ["TileLayout", "LayerTiling", "TileReport", "tile_report", "check_tile_shape",
           "layer_orientation", "block_shape"]


__getattr__, __dir__ = attach(__name__, _LAZY)
