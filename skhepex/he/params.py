"""CKKS parameter selection and 128-bit security validation.

The coefficient modulus is laid out as ``[q0] + [s] * depth + [P]``: a first
prime ``q0`` that keeps the decrypted result (``scale_bits`` of precision plus
headroom for the magnitude of the outputs), ``depth`` rescaling primes of
``scale_bits`` bits (one per multiplicative level) and a special key-switching
prime ``P`` at least as large as every data prime.

Security follows the HomomorphicEncryption.org standard (ternary secret,
classical 128 bits): ``log2 Q`` *including the special prime* may not exceed
109 / 218 / 438 / 881 bits for N = 4096 / 8192 / 16384 / 32768.

With ``defer=True`` the two primes dropped first are large (``t`` bits, up to
60): a first stage whose rescale waits for its square activation encodes its
weights at ``t - s`` bits and saves one prime at the top level, where the first
layer's plaintext products run (see :func:`~skhepex.he.compiler.compile_stages`).

``choose_params`` keeps N = 8192 while a scale of at least
``MIN_SCALE_BITS = 27`` fits, and otherwise moves to N = 16384.  The measured
precision of each scale, the key-switching noise of a small special prime and a
key-dependent outlier of the rotations are in the HE primer
(docs/he_primer.rst, "Scale and precision").
"""
from __future__ import annotations

import warnings

from dataclasses import dataclass
from math import floor
from typing import Tuple

__all__ = [
    "CKKSParams",
    "MAX_LOG_Q",
    "MIN_SCALE_BITS",
    "DEFER_MIN_WEIGHT_BITS",
    "check_security",
    "choose_params",
    "prime_values",
    "resolve_params",
    "validate_params",
]

#: Maximum total bit count of the coefficient modulus (special prime included)
#: for 128-bit classical security, HE standard (ternary secrets).
MAX_LOG_Q = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}

#: Smallest scale (bits) ``choose_params`` accepts: measured max abs error of
#: 2e-4 .. 4e-4 on order-1 outputs (depth 3-5), within the 1e-3 target.
MIN_SCALE_BITS = 27

#: Bits of headroom above the scale kept in the first prime ``q0`` (outputs up
#: to ~2**(margin-1) in magnitude decrypt correctly).
DEFAULT_MARGIN_BITS = 9

#: Automatic parameters lower the scale for headroom down to this many bits
#: (error ~1e-5 relative), not below (see :func:`resolve_params`).
HEADROOM_MIN_SCALE_BITS = 32

#: Smallest scale (bits) of the weights of a stage whose rescale is deferred:
#: the two primes dropped first are ``scale_bits + DEFER_MIN_WEIGHT_BITS`` bits
#: or more, and the weights are encoded at their size minus the scale.
DEFER_MIN_WEIGHT_BITS = 24

_MAX_PRIME_BITS = 60


@dataclass(frozen=True)
class CKKSParams:
    """CKKS encryption parameters.

    Parameters
    ----------
    poly_modulus_degree : int
        Ring dimension N (power of two); the number of slots is N / 2.
    coeff_mod_bit_sizes : tuple of int
        Bit sizes of the primes of the coefficient modulus, the last one being
        the special (key-switching) prime.  ``len - 2`` multiplicative levels
        are available.
    scale_bits : int
        The log2 of the scale used to encode fresh inputs.
    """

    poly_modulus_degree: int
    coeff_mod_bit_sizes: Tuple[int, ...]
    scale_bits: int

    def __post_init__(self):
        object.__setattr__(self, "coeff_mod_bit_sizes",
                           tuple(int(b) for b in self.coeff_mod_bit_sizes))

    @property
    def n_slots(self) -> int:
        """Number of CKKS slots, N / 2."""
        return self.poly_modulus_degree // 2

    @property
    def depth(self) -> int:
        """Number of rescalings available (data primes minus one)."""
        return len(self.coeff_mod_bit_sizes) - 2

    @property
    def log_q(self) -> int:
        """Total bit count of the coefficient modulus incl. the special prime."""
        return int(sum(self.coeff_mod_bit_sizes))

    @property
    def scale(self) -> float:
        """Encoding scale of fresh inputs, 2**scale_bits."""
        return float(2 ** self.scale_bits)

    def to_dict(self) -> dict:
        """Plain-dict form (JSON-serialisable).

        Returns
        -------
        d : dict
            ``poly_modulus_degree, coeff_mod_bit_sizes, scale_bits``.
        """
        return dict(poly_modulus_degree=self.poly_modulus_degree,
                    coeff_mod_bit_sizes=list(self.coeff_mod_bit_sizes),
                    scale_bits=self.scale_bits)

    @classmethod
    def from_dict(cls, d: dict) -> "CKKSParams":
        """Inverse of :meth:`to_dict`.

        Parameters
        ----------
        d : dict
            ``poly_modulus_degree, coeff_mod_bit_sizes, scale_bits``.

        Returns
        -------
        params : CKKSParams
            The parameters.
        """
        return cls(int(d["poly_modulus_degree"]), tuple(d["coeff_mod_bit_sizes"]),
                   int(d["scale_bits"]))


def check_security(poly_modulus_degree: int, coeff_mod_bit_sizes) -> None:
    """Refuse a modulus chain above the 128-bit security bound of the HE standard.

    Parameters
    ----------
    poly_modulus_degree : int
        Ring dimension N.
    coeff_mod_bit_sizes : sequence of int
        The primes, special prime included.

    Raises
    ------
    ValueError
        When ``sum(coeff_mod_bit_sizes)`` exceeds 109/218/438/881 bits for
        N = 4096/8192/16384/32768, or N is not one of those.
    """
    n = int(poly_modulus_degree)
    if n not in MAX_LOG_Q:
        raise ValueError(f"poly_modulus_degree must be one of {sorted(MAX_LOG_Q)}, got {n}")
    bits = [int(b) for b in coeff_mod_bit_sizes]
    bound = MAX_LOG_Q[n]
    if sum(bits) > bound:
        raise ValueError(
            f"insecure CKKS parameters: log2(Q) = {sum(bits)} bits (sum of "
            f"coeff_mod_bit_sizes={bits}, special prime included) exceeds the "
            f"128-bit security bound log2(Q) <= {bound} for N={n} "
            f"(HE standard: 109/218/438/881 for N=4096/8192/16384/32768); use fewer "
            f"or smaller primes or a larger poly_modulus_degree")


def validate_params(params: CKKSParams, depth: int | None = None,
                    min_slots: int | None = None) -> CKKSParams:
    """Check explicit parameters for 128-bit security and fitness.

    Parameters
    ----------
    params : CKKSParams
        The parameters to check.
    depth : int, optional
        Multiplicative depth the network needs; checked against the chain.
    min_slots : int, optional
        Slots one ciphertext must hold (tile size t1*t2).

    Returns
    -------
    params : CKKSParams
        The same object, when valid.

    Raises
    ------
    ValueError
        With the violated bound spelled out (TenSEAL itself only says
        "encryption parameters are not set correctly").
    """
    n = params.poly_modulus_degree
    if n not in MAX_LOG_Q:
        raise ValueError(f"poly_modulus_degree must be one of {sorted(MAX_LOG_Q)}, got {n}")
    bits = params.coeff_mod_bit_sizes
    if len(bits) < 2:
        raise ValueError("coeff_mod_bit_sizes needs at least 2 primes "
                         "(one data prime and the special prime)")
    bad = [b for b in bits if not (2 <= b <= _MAX_PRIME_BITS)]
    if bad:
        raise ValueError(f"every prime must have 2..{_MAX_PRIME_BITS} bits, got {bad}")
    check_security(n, bits)
    if len(bits) > 2 and bits[-1] < max(bits[:-1]):
        raise ValueError(
            f"the special (key-switching, last) prime has {bits[-1]} bits, fewer than the "
            f"largest data prime ({max(bits[:-1])} bits) in coeff_mod_bit_sizes={list(bits)}: "
            f"key switching would then add noise of the order of the results (measured: "
            f"logit errors above 1); make the last prime at least as large as every other")
    if not (1 <= params.scale_bits < _MAX_PRIME_BITS):
        raise ValueError(f"scale_bits must be in [1, {_MAX_PRIME_BITS}), got {params.scale_bits}")
    if params.scale_bits < MIN_SCALE_BITS:
        warnings.warn(
            f"scale_bits={params.scale_bits} is below {MIN_SCALE_BITS}: CKKS results carry an "
            f"error of about 2**-(scale_bits - 15.5) relative to the outputs' scale "
            f"(~{2.0 ** -(params.scale_bits - 15.5):.0e}); predictions may differ from "
            f"plaintext", UserWarning, stacklevel=2)
    if bits[0] <= params.scale_bits:
        raise ValueError(f"first prime ({bits[0]} bits) must exceed scale_bits "
                         f"({params.scale_bits}) to hold the decrypted result")
    if depth is not None and params.depth < depth:
        raise ValueError(f"the network needs multiplicative depth {depth} but "
                         f"coeff_mod_bit_sizes={list(bits)} provides only {params.depth} "
                         f"levels (len - 2)")
    if min_slots is not None and params.n_slots < min_slots:
        raise ValueError(f"a tile needs {min_slots} slots but N={n} gives only "
                         f"{params.n_slots}")
    return params


def _layout(n: int, depth: int, scale_bits: int, margin: int, defer: bool = False) -> list:
    """Return ``[q0] + [s]*depth + [P]`` within the security bound, or None.

    With ``defer``: ``[q0] + [s]*(depth-2) + [t, t] + [P]``, ``t`` as large as
    the bound allows (up to 60), the weights' ``t - s`` bits at least
    ``max(DEFER_MIN_WEIGHT_BITS, s - 4)`` (measured, see the HE primer).
    Leftover bits go to the special prime (up to 60), then to ``q0`` (up to 20).
    """
    q0 = scale_bits + margin
    left = MAX_LOG_Q[n] - q0 - depth * scale_bits
    mids = [scale_bits] * depth
    if defer:
        if depth < 2:
            return None
        left += 2 * scale_bits
        t = min(_MAX_PRIME_BITS, left // 3)
        mids[-2:] = [t, t]
        left -= 2 * t
        if t - scale_bits < max(DEFER_MIN_WEIGHT_BITS, scale_bits - 4):
            return None
    special = min(_MAX_PRIME_BITS, left)
    if q0 > _MAX_PRIME_BITS or special < max([q0] + mids):
        return None
    left -= special
    q0 += max(0, min(left, 20 - margin, _MAX_PRIME_BITS - q0))
    return [q0] + mids + [special]


def choose_params(depth: int, min_slots: int = 1, *, min_scale_bits: int = MIN_SCALE_BITS,
                  max_scale_bits: int = 40, margin_bits: int = DEFAULT_MARGIN_BITS,
                  min_poly_modulus_degree: int = 8192, defer: bool = False) -> CKKSParams:
    """Choose secure CKKS parameters for a network.

    The smallest N (from ``min_poly_modulus_degree``) is taken for which a
    scale of at least ``min_scale_bits`` fits ``depth`` levels under the
    128-bit bound; within it the largest scale up to ``max_scale_bits``.

    Parameters
    ----------
    depth : int
        Multiplicative depth (number of rescalings) the evaluation needs.
    min_slots : int, default=1
        Slots one ciphertext must hold (the tile size t1*t2).
    min_scale_bits, max_scale_bits : int
        Accepted range for the scale (precision ~ 2**-(scale_bits-12)).
    margin_bits : int
        Minimum headroom bits of the first prime above the scale.
    min_poly_modulus_degree : int, default=8192
        Smallest ring dimension considered.
    defer : bool, default=False
        Lay the chain out for a deferred first rescale: the two primes
        dropped first are large (see :func:`_layout`).

    Returns
    -------
    params : CKKSParams
        The chosen parameters, validated.
    """
    depth = int(depth)
    if depth < 0:
        raise ValueError("depth must be >= 0")
    for n in sorted(MAX_LOG_Q):
        if n < min_poly_modulus_degree or n // 2 < min_slots:
            continue
        bound = MAX_LOG_Q[n]
        s = min(max_scale_bits, floor((bound - 2 * margin_bits) / (depth + 2)))
        while s >= min_scale_bits:
            lay = _layout(n, depth, s, margin_bits, defer)
            if lay is not None:
                p = CKKSParams(n, tuple(lay), s)
                return validate_params(p, depth=depth, min_slots=min_slots)
            s -= 1
    raise ValueError(f"no secure CKKS parameters for depth {depth} with scale >= "
                     f"{min_scale_bits} bits and {margin_bits} bits of headroom for the "
                     f"network's value range, up to N=32768: the network is too deep (or its "
                     f"values too large) for 128-bit security; use fewer layers or a "
                     f"narrower input range")


_PRIMES = {}


def _ks_gap(params):
    """Bits by which the special prime exceeds the first prime."""
    return params.coeff_mod_bit_sizes[-1] - params.coeff_mod_bit_sizes[0]


def prime_values(params: CKKSParams):
    """Values of the data primes q0..qL that SEAL generates for ``params``.

    SEAL's ``CoeffModulus.Create`` is deterministic; the result is cached per
    parameter set.  (Imports TenSEAL's SEAL bindings on first use.)

    Parameters
    ----------
    params : CKKSParams

    Returns
    -------
    primes : list of int
        The data primes (the special prime excluded).
    """
    key = (params.poly_modulus_degree, params.coeff_mod_bit_sizes)
    if key not in _PRIMES:
        import tenseal.sealapi as sealapi

        mods = sealapi.CoeffModulus.Create(params.poly_modulus_degree,
                                           list(params.coeff_mod_bit_sizes))
        _PRIMES[key] = [m.value() for m in mods][:-1]
    return list(_PRIMES[key])


def resolve_params(depth, tile_shape, poly_modulus_degree="auto", coeff_mod_bit_sizes="auto",
                   scale_bits="auto", security_level=128, margin_bits=None, defer=False):
    """CKKS parameters from user settings: "auto" parts are chosen, explicit ones validated.

    Parameters
    ----------
    depth : int
        Multiplicative depth the network needs.
    tile_shape : (int, int)
        Tile shape (a ciphertext must hold ``t1 * t2`` slots).
    poly_modulus_degree : int or "auto", default="auto"
        Ring dimension N.
    coeff_mod_bit_sizes : sequence of int or "auto", default="auto"
        Primes of the coefficient modulus, the special prime last.
    scale_bits : int or "auto", default="auto"
        The log2 of the scale.
    security_level : int, default=128
        Only 128 is supported.
    margin_bits : int, optional
        Bits the first prime should keep above the scale so that the network's
        largest decrypted value cannot wrap around (see
        :func:`skhepex.he.bounds.margin_bits_for`); default
        ``DEFAULT_MARGIN_BITS``.  Automatic parameters trade scale bits for it
        only down to ``HEADROOM_MIN_SCALE_BITS`` (or the scale the default
        headroom gives, if lower) and never move to a larger ring: values past
        the headroom are then caught after decryption (see
        :mod:`skhepex.he.bounds`).  Explicit parameters must provide it.
    defer : bool, default=False
        Automatic chains are laid out for a deferred first rescale
        (:func:`choose_params`); explicit ones are taken as given.

    Returns
    -------
    params : CKKSParams
        Chosen or validated parameters.

    Raises
    ------
    ValueError
        Insecure or insufficient explicit parameters, or another security level.
    """
    if security_level != 128:
        raise ValueError(f"security_level={security_level!r} is not supported: only 128-bit "
                         f"security (HE standard bounds) is implemented")
    slots = int(tile_shape[0]) * int(tile_shape[1])
    if coeff_mod_bit_sizes != "auto":
        bits = tuple(int(b) for b in coeff_mod_bit_sizes)
        if len(bits) < 2:
            raise ValueError(f"coeff_mod_bit_sizes={list(bits)} needs at least 2 primes "
                             "(one data prime and the special prime, last)")
        if poly_modulus_degree == "auto":
            n = next((k for k in sorted(MAX_LOG_Q) if k >= 8192 and sum(bits) <= MAX_LOG_Q[k]
                      and k // 2 >= slots), 8192)
        else:
            n = int(poly_modulus_degree)
        s = (min(bits[1:-1]) if len(bits) > 2 else bits[0] - 10) if scale_bits == "auto" \
            else int(scale_bits)
        if scale_bits == "auto" and len(bits) > 2 and s >= bits[0]:
            raise ValueError(
                f"coeff_mod_bit_sizes={list(bits)}: the scale is taken from the middle primes "
                f"({s} bits), which leaves the first prime ({bits[0]} bits) no room for the "
                f"integer part of the results; use a first prime larger than the middle ones "
                f"(e.g. {[min(s + 9, _MAX_PRIME_BITS)] + list(bits[1:])}) or pass scale_bits")
        params = validate_params(CKKSParams(n, bits, s), depth=depth, min_slots=slots)
        if margin_bits is not None and bits[0] - s < margin_bits:
            warnings.warn(
                f"coeff_mod_bit_sizes={list(bits)} with scale_bits={s}: the first prime keeps "
                f"{bits[0] - s} bits above the scale, fewer than the {margin_bits} bits the "
                f"network's value bound asks for on the declared input range; results that "
                f"exceed the decryptable range will be refused after decryption (a first prime "
                f"of {min(s + margin_bits, _MAX_PRIME_BITS)} bits avoids it)", UserWarning,
                stacklevel=2)
        return params
    kw = {"defer": bool(defer)}
    if margin_bits is not None:
        kw["margin_bits"] = max(DEFAULT_MARGIN_BITS, int(margin_bits))
    if poly_modulus_degree != "auto":
        kw["min_poly_modulus_degree"] = int(poly_modulus_degree)
    if scale_bits != "auto":
        kw["min_scale_bits"] = kw["max_scale_bits"] = int(scale_bits)
    if margin_bits is None:
        p = choose_params(depth, slots, **kw)
    else:
        # headroom may cost scale bits down to a floor, never a larger ring (3-7x per op):
        # measured, a depth-5 network at N=8192 went from 4e-4 to 6e-3 abs error when a
        # 14-bit headroom took its scale from 28 to 27 bits (q0 close to the special prime);
        # the special prime must also stay >= 4 bits above q0 (key-switching noise ~ q0/P)
        base = choose_params(depth, slots, **{k: v for k, v in kw.items()
                                              if k != "margin_bits"})
        floor_, gap = min(base.scale_bits, HEADROOM_MIN_SCALE_BITS), min(4, _ks_gap(base))
        p = base
        for m in range(kw["margin_bits"], DEFAULT_MARGIN_BITS, -1):
            try:
                cand = choose_params(depth, slots, **dict(kw, margin_bits=m))
            except ValueError:
                continue
            if (cand.poly_modulus_degree <= base.poly_modulus_degree
                    and cand.scale_bits >= floor_ and _ks_gap(cand) >= gap):
                p = cand
                break
    if poly_modulus_degree != "auto" and p.poly_modulus_degree != int(poly_modulus_degree):
        raise ValueError(f"depth {depth} does not fit poly_modulus_degree="
                         f"{poly_modulus_degree} at 128-bit security with the requested scale; "
                         f"use a larger poly_modulus_degree or 'auto'")
    return p
