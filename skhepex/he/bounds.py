"""Magnitude bounds of encrypted inference: no silent wrap-around.

CKKS decodes a slot value ``v`` correctly only while ``|v| * scale`` stays
below half the last remaining modulus ``q0``: past it, values come back
shifted by a multiple of ``q0 / scale`` (e.g. exactly 512 with a 49-bit
``q0`` and a 40-bit scale), silently.  The decryptable range of a plan is
therefore ``|v| < 2**(log2 q0 - scale_bits - 1)`` (:func:`decryptable_bound`).

This module bounds every output of the packed network from a box of inputs
(``lo <= x <= hi`` per feature) by interval arithmetic: affine maps exactly in
centre/radius form, the activation polynomial ``a z^2 + b z + c`` exactly on
each interval (its vertex included).  The bound is a guarantee, typically 10
to 1000 times the largest value actually reached; the parameter choice keeps
it inside the decryptable range with one bit of margin, the client refuses a
request whose inputs could leave it, and decoded values above the bound raise
:class:`PrecisionError` instead of being returned.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["PrecisionError", "interval_bounds", "output_bound", "slot_bound", "decryptable_bound",
           "margin_bits_for", "widen_range", "SAFETY_BITS"]

#: Bits of headroom kept above the bound (noise and rounding).
SAFETY_BITS = 1
#: Further bits asked for at compile time, so that requests slightly outside the
#: declared box still fit.
SLACK_BITS = 1


class PrecisionError(ValueError):
    """An encrypted result that cannot be trusted (possible wrap-around)."""


def _poly_interval(l, u, abc):
    a, b, c = abc
    f = lambda z: a * z * z + b * z + c  # noqa: E731
    cand = [f(l), f(u)]
    if a != 0.0:
        v = -b / (2.0 * a)
        cand.append(np.where((v > l) & (v < u), f(v), f(l)))
    vals = np.vstack(cand)
    return vals.min(axis=0), vals.max(axis=0)


def interval_bounds(stages, lo, hi):
    """Largest magnitude of every stage's pre-activation and output for inputs in a box.

    Parameters
    ----------
    stages : list of dict
        Stage dicts (``matrix``, ``bias``, ``activation`` as ``(a, b, c)`` or None).
    lo, hi : array-like of shape (n_features,)
        Input box (in the order the first stage multiplies).

    Returns
    -------
    bounds : list of dict
        Per stage: ``slot`` (max magnitude of any slot of its ciphertexts,
        including the partial sums of the tile reductions and unmasked
        garbage slots), ``out`` (max |output|) and ``out_hi`` (per-output
        bound vector of the stage's output).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        lo = np.asarray(lo, dtype=np.float64)
        hi = np.asarray(hi, dtype=np.float64)
        c, r = (lo + hi) / 2.0, (hi - lo) / 2.0
        amax = np.maximum(np.abs(lo), np.abs(hi))
        res = []
        for st in stages:
            W = np.asarray(st["matrix"], dtype=np.float64)
            b = np.asarray(st["bias"], dtype=np.float64)
            c, r = W @ c + b, np.abs(W) @ r
            l, u = c - r, c + r
            partial = np.abs(W) @ amax                     # any partial sum of a row
            # any slot, valid or not (before a mask, a slot may hold parts of two rows)
            slot = 2.0 * float(np.max(partial, initial=0.0)) + float(np.max(np.abs(b),
                                                                              initial=0.0))
            if st.get("activation") is not None:
                a_, b_, c_ = st["activation"]
                slot = max(slot, abs(a_) * slot * slot + abs(b_) * slot + abs(c_))
                l, u = _poly_interval(l, u, st["activation"])
            amax = np.maximum(np.abs(l), np.abs(u))
            c, r = (l + u) / 2.0, (u - l) / 2.0
            res.append(dict(slot=slot, out=float(np.max(amax, initial=0.0)), out_hi=amax))
    for rec in res:
        if not (np.isfinite(rec["slot"]) and np.isfinite(rec["out"])):
            rec["slot"] = rec["out"] = math.inf
    return res


def output_bound(stages, lo, hi, tile_shape=(1, 1)):
    """Largest magnitude of any slot of the decrypted ciphertexts, for inputs in a box.

    The valid output slots hold the last stage's outputs.  When the last stage
    is a "WT" stage with ``t1 > 1`` the other slots are not masked: they hold
    sums of two rows' partial products (and go through the activation, if any).

    Parameters
    ----------
    stages : list of dict
        Stage dicts of the packed network (``orientation`` is read).
    lo, hi : array-like of shape (n_features,)
        Input box.
    tile_shape : (int, int), default=(1, 1)
        Tile shape of the packing.

    Returns
    -------
    bound : float
        ``inf`` when the arithmetic overflows.
    """
    return slot_bound(interval_bounds(stages, lo, hi), stages, tile_shape)


def slot_bound(records, stages, tile_shape):
    """:func:`output_bound` from the records :func:`interval_bounds` returned.

    Parameters
    ----------
    records : list of dict
        ``interval_bounds(stages, lo, hi)``.
    stages : list of dict
        The same stage dicts.
    tile_shape : (int, int)
        Tile shape of the packing.

    Returns
    -------
    bound : float
        Largest magnitude of any slot of the decrypted ciphertexts.
    """
    last = records[-1]
    if stages[-1].get("orientation") == "WT" and int(tile_shape[0]) > 1:
        return max(last["out"], last["slot"])
    return last["out"]


def decryptable_bound(params, first_prime_bits=None):
    """Largest magnitude a decrypted value can have without wrapping around.

    Parameters
    ----------
    params : CKKSParams
        The parameters (first prime and scale).
    first_prime_bits : int, optional
        Bits of the last remaining prime (default: the first of the chain).

    Returns
    -------
    bound : float
        ``2 ** (q0_bits - scale_bits - 1 - SAFETY_BITS)``.
    """
    q0 = params.coeff_mod_bit_sizes[0] if first_prime_bits is None else first_prime_bits
    return float(2.0 ** (q0 - params.scale_bits - 1 - SAFETY_BITS))


def margin_bits_for(bound):
    """Headroom bits ``q0 - scale`` that keep values up to ``bound`` decryptable.

    Parameters
    ----------
    bound : float
        Largest magnitude to decrypt correctly.

    Returns
    -------
    bits : int
        ``q0_bits - scale_bits`` to ask of the parameters.
    """
    if not math.isfinite(bound):
        raise PrecisionError("the magnitude bound of the network's values is infinite for "
                             "the declared input range; declare a finite input_range")
    return int(max(1, math.ceil(math.log2(max(bound, 1.0))))) + 1 + SAFETY_BITS + SLACK_BITS


def widen_range(lo, hi, margin=0.25):
    """A box widened by ``margin`` times its widest side on every side.

    Parameters
    ----------
    lo, hi : array-like of shape (n_features,)
        The box.
    margin : float, default=0.25
        Fraction of the widest side added on every side.

    Returns
    -------
    lo, hi : ndarray
        The widened box.
    """
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    delta = margin * max(float(np.max(hi - lo, initial=0.0)), 1e-12)
    return lo - delta, hi + delta
