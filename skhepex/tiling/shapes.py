"""Tile shapes and the orientation rule of consecutive weight layers."""

from numbers import Integral

import numpy as np

__all__ = ["MAX_TILE_SLOTS", "DEFAULT_TILE_SHAPE", "check_tile_shape", "layer_orientation",
           "block_shape"]

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
