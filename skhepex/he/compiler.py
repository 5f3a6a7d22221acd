"""Compile linear stages (a network's weight layers) into a packed CKKS plan.

Input: a list of *stage dicts* ``name, matrix (n_out, n_in), bias (n_out,),
orientation ("W"/"WT", alternating), block_shape, tile_mask, activation``
where ``activation`` is ``None`` or the coefficients ``(a, b, c)`` of the
polynomial ``a z^2 + b z + c`` (see :mod:`skhepex.he.stages` for how a fitted
network becomes stage dicts).  Output: a frozen
:class:`~skhepex.he.plan.CompiledPlan`.

* The leading coefficient of an activation is folded into the stage: weights
  and bias are scaled by ``sqrt|a|`` so the activation is
  ``sign(a) z'^2 + (b/sqrt|a|) z' + c`` (one level); ``a == 0`` is folded
  entirely into the weights (no level).
* Weight and mask plaintexts are encoded at the prime the next rescale drops
  (ciphertext scales preserved; with a deferred first rescale, see
  :class:`~skhepex.he.backends.SymbolicBackend`), bias/constant plaintexts at
  the ciphertext's exact scale.
* Tiles whose ``tile_mask`` is False are neither encoded nor multiplied.  An
  output tile-row with no live tile is a constant (``act(bias)``): it is folded
  at compile time into the next stage's bias (or returned in clear for the last
  stage), which also removes its rotations.  Tiles whose weights all encode to
  zero at the smallest rescale prime (``|w| q < 1/2``) are skipped too: SEAL
  rejects the exactly-zero ("transparent") product.  An input chunk that no
  live tile of the first stage reads is not in its ``live_in``: the client
  neither encodes nor encrypts it (pruning that empties a tile-column of the
  first layer saves input ciphertexts too).
* A stage dict with ``gather=True`` (a "W" stage after a "WT" stage, see
  :func:`final_gather`) is gathered: the "WT" stage before it is neither
  masked nor replicated, one level less; its lanes whose weights all encode to
  zero are skipped like tiles.
* With ``t1 == 1`` a "WT" stage has nothing to reduce: no rotation, no mask, no
  mask level.  With 1x1 tiles every plaintext is one value in every slot: the
  plan keeps the scalar and the server encodes it when it is used.
"""
from __future__ import annotations

from dataclasses import replace
from numbers import Real

import numpy as np

from ..tiling import block_shape, check_tile_shape
from .backends import SymbolicBackend, deferred_weight_scale
from .packing import lane_rows, stage_steps, tile_vector
from .params import CKKSParams, choose_params, prime_values, validate_params
from .plan import CompiledPlan, PtKey, RowPlan, StagePlan, key_nbytes
from .program import CountingBackend, run_program

__all__ = ["compile_stages", "count_ops", "required_depth", "poly_value", "final_gather",
           "can_defer"]


def _check_activation(act, name):
    """``None`` or the (a, b, c) coefficients as floats; ValueError otherwise."""
    if act is None:
        return None
    try:
        ok = len(act) == 3 and all(isinstance(v, Real) and np.isfinite(v) for v in act)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"stage {name!r}: activation {act!r} cannot be evaluated under CKKS; "
                         f"it must be None or the coefficients (a, b, c) of the polynomial "
                         f"a*z**2 + b*z + c")
    return tuple(float(v) for v in act)


def poly_value(z, abc):
    """Evaluate the activation polynomial ``a z^2 + b z + c`` (identity for ``None``).

    Parameters
    ----------
    z : ndarray
        Pre-activations.
    abc : tuple of float or None
        Coefficients ``(a, b, c)``.

    Returns
    -------
    ndarray
    """
    if abc is None:
        return z
    a, b, c = abc
    return a * z * z + b * z + c


def _t1(st, tile_shape=None) -> int:
    """``t1`` of the packing (read from a stage's block shape when not given)."""
    if tile_shape is not None:
        return int(tile_shape[0])
    bs = st.get("block_shape")
    if bs is None:
        return 2
    return int(bs[0] if st["orientation"] == "W" else bs[1])


def _gathers(stages, s_i, tile_shape=None) -> bool:
    """Whether stage ``s_i`` is gathered (flagged, a "W" stage after a "WT" one, t1 > 1)."""
    st = stages[s_i]
    return (bool(st.get("gather", False)) and st["orientation"] == "W" and s_i > 0
            and _t1(st, tile_shape) > 1)


def _needs_mask(stages, s_i, tile_shape=None) -> bool:
    """Whether a "WT" stage's output is masked and re-replicated.

    Not for the last stage, not with ``t1 == 1``, and not before a gathered stage.
    """
    st = stages[s_i]
    if st["orientation"] != "WT" or s_i == len(stages) - 1:
        return False
    return _t1(st, tile_shape) > 1 and not _gathers(stages, s_i + 1, tile_shape)


def final_gather(stages, tile_shape):
    """The stages with the last one gathered, or ``None`` when it cannot be.

    A gathered last stage (:mod:`skhepex.he.program`) saves the mask level and
    the replication of the "WT" stage before it, at ``t1`` times its own
    plaintext multiplies; :func:`skhepex.he.build.resolve_variant` prices both.

    Parameters
    ----------
    stages : list of dict
        Stage dicts.
    tile_shape : (int, int)
        Tile shape.

    Returns
    -------
    stages : list of dict or None
        Shallow copies (the last one with ``gather=True``), or ``None`` when
        the last stage is not a "W" stage after a "WT" stage with ``t1 > 1``.
    """
    if len(stages) < 2 or int(tile_shape[0]) < 2 or stages[-1]["orientation"] != "W":
        return None
    return [dict(st) for st in stages[:-1]] + [dict(stages[-1], gather=True)]


def can_defer(stages, tile_shape=None, encrypt_weights=False) -> bool:
    """Whether the first stage's rescale can be deferred to its activation: it has a
    square term and no mask, and the weights are plaintexts.

    Parameters
    ----------
    stages : list of dict
        Stage dicts (see :func:`compile_stages`).
    tile_shape : (int, int), optional
        Tile shape; read from the stages' ``block_shape`` when omitted.
    encrypt_weights : bool, default=False
        Weights as ciphertexts (never deferred).

    Returns
    -------
    ok : bool
    """
    if encrypt_weights or not stages:
        return False
    abc = _check_activation(stages[0].get("activation"), stages[0].get("name", 0))
    return abc is not None and abc[0] != 0.0 and not _needs_mask(stages, 0, tile_shape)


def required_depth(stages, tile_shape=None, defer=False) -> int:
    """Multiplicative depth (rescalings) the packed network consumes.

    Per stage: 1 (weights) + 1 for an activation with ``a != 0`` + 1 for the
    mask of a "WT" stage followed by another stage (none when ``t1 == 1`` or
    when the next stage is gathered); one less with a deferred first rescale.

    Parameters
    ----------
    stages : list of dict
        Stage dicts (see :func:`compile_stages`).
    tile_shape : (int, int), optional
        Tile shape; read from the stages' ``block_shape`` when omitted.
    defer : bool, default=False
        Count for a deferred first rescale (see :func:`can_defer`).

    Returns
    -------
    depth : int
        Levels (rescalings) the packed evaluation consumes: the ``depth``
        the CKKS parameters must support (see
        :func:`~skhepex.he.params.choose_params`).
    """
    d = 0
    for s_i, st in enumerate(stages):
        abc = _check_activation(st.get("activation"), st.get("name", s_i))
        d += 1 + (abc is not None and abc[0] != 0.0)
        d += _needs_mask(stages, s_i, tile_shape)
    return int(d) - bool(defer)


def _fold_activation(abc):
    """(sign, linear coef, constant, weight factor) of the folded activation."""
    if abc is None:
        return 0, 0.0, 0.0, 1.0
    a, b, c = abc
    if a == 0.0:
        return 0, 0.0, c, b
    fac = float(np.sqrt(abs(a)))
    return (1 if a > 0 else -1), b / fac, c, fac


def _stage_blocks(st, s_i, prev, tile_shape):
    """Validated blocks of one stage dict: (name, orient, n_in, W padded, bias, blocks, mask)."""
    name = str(st.get("name", f"stage{s_i}"))
    W = np.asarray(st["matrix"], dtype=np.float64)
    beta = np.asarray(st["bias"], dtype=np.float64).reshape(-1)
    n_out, n_in = W.shape
    if beta.shape[0] != n_out:
        raise ValueError(f"stage {name!r}: bias length {beta.shape[0]} != {n_out}")
    orient = st["orientation"]
    if orient not in ("W", "WT"):
        raise ValueError(f"stage {name!r}: orientation must be 'W' or 'WT'")
    if prev is not None and orient == prev.orientation:
        raise ValueError(f"stage {name!r}: orientations must alternate W, WT, W, ...")
    r, c = block_shape(orient, tile_shape)
    if tuple(st.get("block_shape", (r, c))) != (r, c):
        raise ValueError(f"stage {name!r}: block_shape {st.get('block_shape')} does not "
                         f"match orientation {orient} with tile {tile_shape} "
                         f"(expected {(r, c)})")
    if prev is not None and n_in != prev.n_out:
        raise ValueError(f"stage {name!r}: n_in {n_in} != previous n_out {prev.n_out}")
    P, Q = -(-n_out // r), -(-n_in // c)
    tmask = st.get("tile_mask")
    tmask = np.ones((P, Q), bool) if tmask is None else np.asarray(tmask, bool)
    if tmask.shape != (P, Q):
        raise ValueError(f"stage {name!r}: tile_mask shape {tmask.shape} != grid {(P, Q)}")
    Wp = np.zeros((P * r, Q * c))
    Wp[:n_out, :n_in] = W
    blocks = Wp.reshape(P, r, Q, c).transpose(0, 2, 1, 3)      # (P, Q, r, c)
    dead_nz = np.abs(blocks[~tmask]).max(initial=0.0)
    if dead_nz != 0.0:
        raise ValueError(f"stage {name!r}: tiles with tile_mask False must be all-zero "
                         f"(max |w| = {dead_nz:g})")
    return name, orient, n_in, Wp, beta, blocks, tmask


def _build(stages, tile_shape, slots, materialize, encrypt_weights, zero_tol):
    """Stage plans and plaintext vectors (structure only; levels come later)."""
    t1, t2 = tile_shape
    if t1 * t2 > slots:
        raise ValueError(f"tile {t1}x{t2} needs {t1 * t2} slots > {slots}")
    b = slots // (t1 * t2)
    scalar = t1 == 1 and t2 == 1
    if len(stages) == 0:
        raise ValueError("empty network")

    def vec(fill):
        if not materialize:
            return None
        if scalar:
            return np.asarray(fill, dtype=np.float64).reshape(1)
        return tile_vector(tile_shape, b, fill)

    pts, plans, const_in = {}, [], {}
    m_valid = np.zeros((t2, t1))
    m_valid[:, 0] = 1.0
    for s_i, st in enumerate(stages):
        prev = plans[-1] if plans else None
        name, orient, n_in, Wp, beta, blocks, tmask = _stage_blocks(st, s_i, prev, tile_shape)
        P, Q, r, c = blocks.shape
        abc = _check_activation(st.get("activation"), name)
        sign, lin, cst, fac = _fold_activation(abc)
        masked = _needs_mask(stages, s_i, tile_shape)
        gather = _gathers(stages, s_i, tile_shape)
        if st.get("gather", False) and not gather:
            raise ValueError(f"stage {name!r}: gather=True needs a 'W' stage after a 'WT' "
                             f"stage and t1 > 1 (tile {tile_shape})")
        live_in = list(range(Q)) if prev is None else [row.p for row in prev.rows]
        # constant input chunks (rows of the previous stage without live tiles) -> bias
        xc = np.zeros(Q * c)
        for q, v in const_in.items():
            xc[q * c:(q + 1) * c] = v
        beff = np.zeros(P * r)
        beff[:len(beta)] = beta
        beff = beff + Wp @ xc
        tile_max = np.abs(blocks).max(axis=(2, 3)) * abs(fac)
        rows, const_out = [], {}
        for p in range(P):
            qs = [q for q in live_in if tmask[p, q] and tile_max[p, q] > zero_tol]
            terms = []
            for q in qs:
                blk = blocks[p, q] * fac                            # (r, c) (out, in)
                if gather:    # lane i: W[p t1 + i, q t2 + j] at (j, 0), zero elsewhere
                    for i in np.flatnonzero(np.abs(blk).max(axis=1) > zero_tol):
                        key = PtKey(s_i, "w", p, q, int(i))
                        fill = np.zeros((t2, t1))
                        fill[:, 0] = blk[i]
                        pts[key] = vec(fill)
                        terms.append((q, key))
                    continue
                # W: slot(j,i) = W[p t1 + i, q t2 + j] = blk[i, j] -> fill[j, i] = blk.T
                # WT: slot(j,i) = W[p t2 + j, q t1 + i] = blk[j, i] -> fill = blk
                key = PtKey(s_i, "w", p, q)
                pts[key] = vec(blk.T if orient == "W" else blk)
                terms.append((q, key))
            if not terms:     # no live tile (or every lane of every live tile is zero)
                const_out[p] = poly_value(beff[p * r:(p + 1) * r], abc)
                continue
            bvals = beff[p * r:(p + 1) * r] * fac + (cst if sign == 0 else 0.0)
            if orient == "W":
                bperm = np.zeros(r)
                bperm[lane_rows(r, gather)] = bvals                    # gathered: (-i) mod t1
                bfill = np.tile(bperm[None, :], (t2, 1))               # indexed along i
            else:
                bfill = np.zeros((t2, t1))
                bfill[:, 0] = bvals                                    # valid at i = 0
            keys = dict(bias_key=PtKey(s_i, "b", p) if np.any(bvals != 0.0) else None,
                        mask_key=PtKey(s_i, "m", p) if masked else None,
                        lin_key=PtKey(s_i, "l", p) if sign != 0 and lin != 0.0 else None,
                        const_key=PtKey(s_i, "c", p) if sign != 0 and cst != 0.0 else None)
            fills = dict(bias_key=bfill, mask_key=m_valid,
                         lin_key=np.full((t2, t1), lin),
                         const_key=m_valid * cst if masked else np.full((t2, t1), cst))
            for attr, key in keys.items():
                if key is not None:
                    pts[key] = vec(fills[attr])
            rows.append(RowPlan(p, terms, **keys))
        if prev is None:   # the client encrypts only the input chunks some live tile reads
            live_in = sorted({q for row in rows for q, _ in row.terms})
        red, rep, merge = stage_steps(orient, tile_shape, b, masked, gather)
        plans.append(StagePlan(name, orient, n_in, len(beta), (P, Q), tmask, live_in, rows,
                               const_out, red, rep, sign, masked, c, r,
                               encrypted=bool(encrypt_weights), gather=gather,
                               merge_steps=merge))
        const_in = const_out
    return plans, pts, b, scalar


def _stage_records(plan_stages, counter, pt_spec, key_nbytes):
    """Per-stage op-count records of a plan."""
    totals = counter.totals()
    out = []
    for s_i, st in enumerate(plan_stages):
        keys = [k for k in pt_spec if k.stage == s_i]
        enc = [k for k in keys if st.encrypted and k.kind in ("w", "b")]
        plain = [k for k in keys if k not in enc]
        levels = {lvl for (op, lvl) in counter.counts[s_i] if op == "rescale"}
        d = dict(stage=st.name, orientation=st.orientation,
                 n_tiles=int(st.tile_mask.size), n_nonzero_tiles=int(st.tile_mask.sum()),
                 n_packed_tiles=st.n_packed_tiles,
                 n_skipped_tiles=int(st.tile_mask.size - st.n_packed_tiles),
                 n_live_rows=len(st.rows), n_const_rows=len(st.const_out),
                 levels_used=len(levels),
                 plaintext_bytes=int(sum(key_nbytes(k) for k in plain)),
                 n_plaintexts=len(plain),
                 weight_ciphertext_bytes=int(sum(key_nbytes(k) for k in enc)),
                 n_weight_ciphertexts=len(enc))
        d.update(totals[s_i])
        out.append(d)
    return out


def compile_stages(stages, tile_shape, params="auto", *, encrypt_weights=False,
                   materialize=True, defer_rescale=False) -> CompiledPlan:
    """Compile a list of linear stages into a packed CKKS plan (no keys).

    Parameters
    ----------
    stages : list of dict
        ``name, matrix (n_out, n_in), bias (n_out,), orientation ("W"/"WT"),
        block_shape, tile_mask, activation (None or (a, b, c))``.
    tile_shape : (int, int)
        ``(t1, t2)``, powers of two.
    params : CKKSParams or "auto", default="auto"
        Explicit parameters are validated (128-bit bound, depth, slots).
    encrypt_weights : bool, default=False
        Weights and biases become ciphertexts under the client's key: products
        are ciphertext x ciphertext (one relinearisation per output tile-row).
    materialize : bool, default=True
        Build the slot vectors of the plaintexts.  ``False`` gives a plan that
        only counts (levels, op counts, memory): fast, for cost estimates.
    defer_rescale : bool, default=False
        Defer the first stage's rescale to its square (:func:`can_defer`):
        one prime fewer at the top level, where the first layer's products
        run; the chain needs large top primes (``choose_params(defer=True)``).

    Returns
    -------
    plan : CompiledPlan
        The packed plan: parameters, stage plans, plaintext slot vectors
        (``None`` if not ``materialize``) with their levels and scales, and
        the op counts per stage.
    """
    tile_shape = check_tile_shape(tile_shape)
    if defer_rescale and not can_defer(stages, tile_shape, encrypt_weights):
        raise ValueError("defer_rescale=True needs a first stage with a square activation, "
                         "no mask and plaintext weights")
    depth = required_depth(stages, tile_shape, defer_rescale)
    slots = tile_shape[0] * tile_shape[1]
    if isinstance(params, str):
        if params != "auto":
            raise ValueError("params must be a CKKSParams or 'auto'")
        params = choose_params(depth, slots, defer=defer_rescale)
    elif isinstance(params, CKKSParams):
        validate_params(params, depth=depth, min_slots=slots)
    else:
        raise TypeError(f"params must be a CKKSParams or 'auto', got {type(params).__name__}")
    primes = tuple(prime_values(params))
    zero_tol = 0.5 / float(min(primes[1:] or primes))
    if defer_rescale:          # the first stage's weights are encoded at q_top / scale
        zero_tol = max(zero_tol, 0.5 / deferred_weight_scale(primes, params.scale))
    plans, pts, batch, scalar = _build(stages, tile_shape, params.n_slots, materialize,
                                       encrypt_weights, zero_tol)
    if defer_rescale:
        plans[0] = replace(plans[0], defer_rescale=True)
    sym = SymbolicBackend(primes, params.scale, defer=defer_rescale)
    counter = CountingBackend(sym, scalar_plaintexts=scalar)
    run_program(plans, {q: sym.fresh for q in plans[0].live_in}, counter)
    pt_spec = {k: sym.spec[k] for k in pts}

    def nbytes(key):
        return key_nbytes(key, pt_spec[key][0], params, len(primes),
                          encrypted_weights=encrypt_weights, scalar_plaintexts=scalar)

    return CompiledPlan(params=params, primes=primes, tile_shape=tile_shape, batch=batch,
                        n_features=plans[0].n_in, n_outputs=plans[-1].n_out, stages=plans,
                        plaintexts=pts, pt_spec=pt_spec, depth=sym.max_level,
                        level_ops=counter.counts,
                        op_counts=_stage_records(plans, counter, pt_spec, nbytes),
                        encrypted_weights=bool(encrypt_weights), scalar_plaintexts=scalar)


def count_ops(stages, tile_shape, params="auto", *, encrypt_weights=False):
    """Per-stage op counts of the packed network, computed without keys.

    Parameters
    ----------
    stages : list of dict
        Stage dicts (see :func:`compile_stages`).
    tile_shape : (int, int)
        ``(t1, t2)``, powers of two.
    params : CKKSParams or "auto", default="auto"
        Parameters to count with (validated), or chosen for the depth.
    encrypt_weights : bool, default=False
        Count weights and biases as ciphertexts (ct x ct products).

    Returns
    -------
    counts : list of dict
        Per stage: ``n_tiles, n_nonzero_tiles, n_packed_tiles, n_skipped_tiles,
        mul_plain (ct*pt), mul_ct (ct*ct), rotate, rescale, relinearize, add,
        add_plain, negate, levels_used, plaintext_bytes`` -- per batch of
        ``plan.batch`` samples.
    """
    return compile_stages(stages, tile_shape, params, encrypt_weights=encrypt_weights,
                          materialize=False).op_counts
