"""One packing of a network: CKKS parameters, compiled plans and range guard.

Used by :meth:`HEPredictor.fit <skhepex.he.HEPredictor.fit>` for the fitted
packing and by request-sized packings that need parameters of their own.
"""
from __future__ import annotations

from .bounds import margin_bits_for, output_bound
from .compiler import compile_stages, required_depth
from .guard import RangeGuard
from .params import resolve_params

__all__ = ["compile_packing"]


def compile_packing(stage_sets, tile_shape, param_kw, input_range=None, encrypt_weights=False):
    """Resolve parameters for ``stage_sets`` and compile one plan per set.

    Parameters
    ----------
    stage_sets : dict of str -> list of dict
        Symbolic stages per plan (``"predict"``, and ``"transform"`` for the
        encoder of an autoencoder), all with ``tile_shape``.
    tile_shape : (int, int)
        The packing's tile shape.
    param_kw : dict
        ``poly_modulus_degree``, ``coeff_mod_bit_sizes``, ``scale_bits``,
        ``security_level`` (each a value or ``"auto"``), for
        :func:`~skhepex.he.params.resolve_params`.
    input_range : (ndarray, ndarray), optional
        Declared box of the encoded inputs; its output bounds add headroom
        bits (``margin_bits``) to the parameters.
    encrypt_weights : bool, default=False
        Pack the weights for encryption.

    Returns
    -------
    params : CKKSParams
        Parameters deep enough for every set.
    plans : dict of str -> CompiledPlan
        One compiled plan per set.
    guard : RangeGuard
        Value bounds of the sets under ``params``.
    """
    bounds = {k: (None if input_range is None else output_bound(st, *input_range, tile_shape))
              for k, st in stage_sets.items()}
    kw = dict(param_kw)
    if input_range is not None:
        kw["margin_bits"] = margin_bits_for(max(bounds.values()))
    depth = max(required_depth(st, tile_shape) for st in stage_sets.values())
    params = resolve_params(depth, tile_shape, **kw)
    plans = {k: compile_stages(st, tile_shape, params, encrypt_weights=encrypt_weights)
             for k, st in stage_sets.items()}
    return params, plans, RangeGuard(stage_sets, tile_shape, params, input_range, bounds)
