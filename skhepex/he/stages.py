"""From a fitted network to the engine's stage dicts, following its TileLayout."""
from __future__ import annotations

from ..tiling import TileLayout

__all__ = ["build_stages"]


def _activation_coefficients(stage, layer):
    """(a, b, c) of the stage's activation, None without one; ValueError if not a polynomial."""
    act = stage.activation
    if act is None:
        return None
    poly = act.polynomial()
    if poly is None:
        raise ValueError(
            f"layer {layer.name!r} (weight layer {layer.index}) is followed by the "
            f"activation {act.name!r}, which is not a polynomial and cannot be evaluated "
            f"under CKKS encryption; train the network with activation='square' or "
            f"activation='poly' (a*x**2 + b*x + c) instead")
    return tuple(float(v) for v in poly)


def build_stages(estimator, tile_shape, n_stages=None, layout=None):
    """Engine stage dicts of a fitted network, following its :class:`~skhepex.tiling.TileLayout`.

    Parameters
    ----------
    estimator : estimator
        Fitted network, or a Pipeline / HEPEx / HEPredictor holding one.
    tile_shape : (int, int)
        Tile shape.
    n_stages : int, optional
        Keep only the first ``n_stages`` stages (e.g. an encoder).
    layout : TileLayout, optional
        Precomputed layout for ``tile_shape``.

    Returns
    -------
    stages : list of dict
        ``name, matrix, bias, orientation, block_shape, tile_mask, activation``
        with ``activation`` None or the polynomial's ``(a, b, c)``.

    Raises
    ------
    ValueError
        If a stage's activation is not a polynomial (naming the layer).
    """
    layout = TileLayout(estimator, tile_shape) if layout is None else layout
    n = len(layout.layers) if n_stages is None else int(n_stages)
    out = []
    for i in range(n):
        layer, st = layout.layers[i], layout.stages[i]
        M, b = layout.matrices()[i]
        out.append(dict(name=layer.name, matrix=M, bias=b, orientation=layer.orientation,
                        block_shape=layer.block_shape, tile_mask=layer.tile_mask,
                        activation=_activation_coefficients(st, layer)))
    return out
