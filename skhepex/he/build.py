"""One packing of a network: the cheaper evaluation variant, CKKS parameters, plans, guard.

Used by :meth:`HEPredictor.fit <skhepex.he.HEPredictor.fit>` for the fitted
packing, by request-sized packings, by the automatic tile-shape choice and by
the keyless cost report, so that all of them pack a network the same way.

Variants: a network whose last layer is a "W" stage after a "WT" stage can
run that stage *gathered* (:func:`~skhepex.he.compiler.final_gather`): one
level less for the whole network (no mask) and no replication rotations, at
``t1`` times the last stage's plaintext multiplies.  A network whose first
layer has a square activation can defer that layer's rescale to the square
(:func:`~skhepex.he.compiler.can_defer`): one prime fewer at the top level,
where the first layer's products and the client's encryptions run, for a
chain with two large top primes.  :func:`resolve_variant` prices every
combination with the cost model and keeps the cheapest.
"""
from __future__ import annotations

from .bounds import margin_bits_for, output_bound
from .compiler import can_defer, compile_stages, final_gather, required_depth
from .costs import client_latency, predict_latency, unit_costs
from .guard import RangeGuard
from .params import resolve_params

__all__ = ["compile_packing", "resolve_variant", "GATHER_MIN_SCALE_BITS",
           "DEFER_MIN_SCALE_BITS"]

#: Smallest scale (bits) a gathered packing gets when the plain one has more (or
#: does not fit):
#: the lanes' zero weights clear the unmasked slots only up to their encoding
#: error (~2^-scale), times values as large as the activations.  Measured on
#: 64-128-128-10 (digits, B=64): scale 28 gave 7e-4 median / 3e-3 max abs
#: error, scale 39 gave 2e-6 / 5e-5 (the plain packing at 39 bits: 5e-5 max).
GATHER_MIN_SCALE_BITS = 33

#: Smallest scale (bits) of a deferred packing when the plain one does not fit
#: (otherwise it needs the plain packing's scale: never less precise).
DEFER_MIN_SCALE_BITS = 32


def _variants(stage_sets, tile_shape, gather):
    """Candidate stage sets: as given, and with every gatherable last stage gathered."""
    plain = dict(stage_sets)
    if gather is False:
        return [plain]
    gathered = {k: final_gather(st, tile_shape) for k, st in stage_sets.items()}
    if all(v is None for v in gathered.values()):
        return [plain]
    gathered = {k: st if gathered[k] is None else gathered[k] for k, st in stage_sets.items()}
    return [gathered] if gather is True else [plain, gathered]


def _gather_params(p, plain, depth, tile_shape, kw):
    """Parameters of the gathered variant, no less precise than the plain one (or None).

    The floor is ``min(GATHER_MIN_SCALE_BITS, plain scale)`` (``GATHER_MIN_SCALE_BITS``
    when the plain variant does not fit).  Below it an automatic ring moves to
    the plain variant's ring (or twice the ring); fixed parameters drop the variant.
    """
    floor = GATHER_MIN_SCALE_BITS if plain is None else min(GATHER_MIN_SCALE_BITS,
                                                            plain.scale_bits)
    if p.scale_bits >= floor:
        return p
    auto = all(kw.get(k, "auto") == "auto" for k in ("poly_modulus_degree",
                                                       "coeff_mod_bit_sizes"))
    ring = 2 * p.poly_modulus_degree if plain is None else plain.poly_modulus_degree
    if depth is None or not auto or ring <= p.poly_modulus_degree:
        return None
    try:
        q = resolve_params(depth, tile_shape, **dict(kw, poly_modulus_degree=ring))
    except ValueError:
        return None
    return q if q.scale_bits >= floor else None


def resolve_variant(stage_sets, tile_shape, param_kw, input_range=None, encrypt_weights=False,
                    *, params=None, measure=False, gather="auto", defer="auto"):
    """The cheaper evaluation variant of ``stage_sets``, its parameters and counting plans.

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
    params : CKKSParams, optional
        Fixed parameters (e.g. the fitted ones) instead of resolving them.
    measure : bool, default=False
        Price with measured (True) or tabulated (False) unit costs.
    gather : {"auto", True, False}, default="auto"
        Gather the last stages (True), never (False), or the cheaper.
    defer : {"auto", True, False}, default="auto"
        Defer the first rescale (True, where the network allows it), never
        (False), or the cheaper.

    Returns
    -------
    record : dict
        ``stage_sets`` (the chosen variant), ``params``, ``plans`` (counting
        plans), ``bounds`` (output bound per set or None), ``costs`` (unit
        costs), ``seconds`` (predicted server + client seconds per batch,
        summed over the sets), ``defer`` (whether the first rescale is deferred).

    Raises
    ------
    ValueError
        When no variant fits (the error of the first).
    """
    bounds = {k: (None if input_range is None else output_bound(st, *input_range, tile_shape))
              for k, st in stage_sets.items()}
    kw = dict(param_kw)
    if input_range is not None:
        kw["margin_bits"] = margin_bits_for(max(bounds.values()))
    best, first_error, plain_params = None, None, None
    for sets, defer in _with_defer(_variants(stage_sets, tile_shape, gather), tile_shape,
                                   encrypt_weights, defer):
        gathered = any(sets[k] is not stage_sets[k] for k in sets)
        try:
            p = params
            if p is None:
                depth = max(required_depth(st, tile_shape, defer) for st in sets.values())
                p = resolve_params(depth, tile_shape, defer=defer, **kw)
            floor = getattr(plain_params, "scale_bits", DEFER_MIN_SCALE_BITS)
            if defer and kw.get("coeff_mod_bit_sizes", "auto") == "auto" and p.scale_bits < floor:
                raise ValueError(f"a deferred first rescale leaves a {p.scale_bits}-bit scale, "
                                 f"less than {floor} bits")
            if gathered and gather == "auto" and not defer:
                p = _gather_params(p, plain_params, depth if params is None else None,
                                   tile_shape, kw)
                if p is None:
                    continue
            plans = {k: compile_stages(st, tile_shape, p, encrypt_weights=encrypt_weights,
                                       materialize=False, defer_rescale=defer)
                     for k, st in sets.items()}
        except ValueError as exc:
            first_error = first_error or exc
            continue
        if not gathered and not defer:
            plain_params = p
        costs = unit_costs(p, measure=measure)
        seconds = sum(float(sum(predict_latency(pl, costs))) + client_latency(pl, costs)
                      for pl in plans.values())
        if best is None or seconds < best["seconds"]:
            best = dict(stage_sets=sets, params=p, plans=plans, bounds=bounds, costs=costs,
                        seconds=seconds, defer=defer)
    if best is None:
        raise first_error or ValueError("no evaluation variant fits these parameters")
    return best


def _with_defer(variants, tile_shape, encrypt_weights, defer):
    """``(stage_sets, defer)`` candidates: each variant as is, then deferred where it can be."""
    out = [(sets, False) for sets in variants] if defer in ("auto", False) else []
    if defer in ("auto", True):
        out += [(sets, True) for sets in variants
                if all(can_defer(st, tile_shape, encrypt_weights) for st in sets.values())]
    return out


def compile_packing(stage_sets, tile_shape, param_kw, input_range=None, encrypt_weights=False,
                    *, params=None, gather="auto", defer="auto"):
    """Resolve the variant and parameters for ``stage_sets`` and compile one plan per set.

    Parameters
    ----------
    stage_sets : dict of str -> list of dict
        Symbolic stages per plan, all with ``tile_shape``.
    tile_shape : (int, int)
        The packing's tile shape.
    param_kw : dict
        Parameter options (see :func:`resolve_variant`).
    input_range : (ndarray, ndarray), optional
        Declared box of the encoded inputs.
    encrypt_weights : bool, default=False
        Pack the weights for encryption.
    params : CKKSParams, optional
        Fixed parameters instead of resolving them.
    gather : {"auto", True, False}, default="auto"
        Evaluation variant of the last stages (see :func:`resolve_variant`).
    defer : {"auto", True, False}, default="auto"
        Deferred first rescale (see :func:`resolve_variant`).

    Returns
    -------
    params : CKKSParams
        Parameters deep enough for every set.
    plans : dict of str -> CompiledPlan
        One compiled plan per set.
    guard : RangeGuard
        Value bounds of the sets under ``params``.
    """
    rec = resolve_variant(stage_sets, tile_shape, param_kw, input_range, encrypt_weights,
                          params=params, gather=gather, defer=defer)
    params, sets = rec["params"], rec["stage_sets"]
    plans = {k: compile_stages(st, tile_shape, params, encrypt_weights=encrypt_weights,
                               defer_rescale=rec["defer"])
             for k, st in sets.items()}
    return params, plans, RangeGuard(sets, tile_shape, params, input_range, rec["bounds"])
