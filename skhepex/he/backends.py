"""Key-free backends of the op sequence: symbolic levels/scales and NumPy slots.

:class:`SymbolicBackend` tracks ``(level, scale, size)`` exactly as SEAL does
and records at which level and scale each plaintext must be encoded: the
compiler runs it once to fill the plan's ``pt_spec`` and op counts.
:class:`NumpyBackend` runs the same ops on float64 slot vectors (rotations are
``np.roll``).  The SEAL backend lives in :mod:`skhepex.he.seal_backend`.
"""
from __future__ import annotations

import math

import numpy as np

from .params import DEFER_MIN_WEIGHT_BITS

__all__ = ["SymbolicBackend", "NumpyBackend", "deferred_weight_scale"]


def _check_deferred(scale, what):
    if scale < 2.0 ** (DEFER_MIN_WEIGHT_BITS - 1):
        raise ValueError(f"{what} would be encoded at 2**{math.log2(scale):.1f}: the "
                         f"coefficient modulus is not laid out for a deferred first rescale "
                         f"(choose_params(..., defer=True))")
    return scale


def deferred_weight_scale(primes, scale):
    """Scale of the first stage's weights when its rescale is deferred: ``q_top / scale``.

    Parameters
    ----------
    primes : sequence of int
        Data primes q0..qL.
    scale : float
        Scale of fresh inputs.

    Returns
    -------
    weight_scale : float

    Raises
    ------
    ValueError
        Below ``2**(DEFER_MIN_WEIGHT_BITS - 1)``: the chain is not laid out for deferral.
    """
    return _check_deferred(float(primes[-1]) / float(scale), "the first stage's weights")


class SymbolicBackend:
    """Levels, scales and ciphertext sizes of the op sequence, without data.

    Parameters
    ----------
    primes : sequence of int
        Data primes q0..qL.
    scale : float
        Scale of fresh inputs.
    defer : bool, default=False
        Stage 0's rescale is deferred to its activation
        (:attr:`~skhepex.he.plan.StagePlan.defer_rescale`): its weights are
        encoded at ``q_top / scale`` (the square's rescale then drops ``q_top``
        and leaves scale ``q_top``), and every later weight or mask at
        ``q * scale / ct_scale``, which brings the ciphertext back to
        ``scale`` after its rescale.  A weight scale below
        ``2**(DEFER_MIN_WEIGHT_BITS - 1)`` is an error (the chain is not
        laid out for deferral).

    Attributes
    ----------
    spec : dict
        PtKey -> (level, scale) at which the plaintext must be encoded.
    max_level : int
        Deepest level reached (levels consumed).
    """

    def __init__(self, primes, scale, defer=False):
        self.primes = [float(p) for p in primes]
        self.L = len(self.primes) - 1
        self.spec = {}
        self.max_level = 0
        self.fresh = (0, float(scale), 2)
        self.defer = bool(defer)

    def level(self, ct):
        """Level of a symbolic ciphertext ``(level, scale, size)``."""
        return ct[0]

    def _drop_prime(self, lvl):
        if lvl >= self.L:
            raise ValueError("out of levels: the network needs more depth than the "
                             "coefficient modulus provides")
        return self.primes[self.L - lvl]

    def _need(self, key, spec):
        old = self.spec.get(key)
        if old is not None and old != spec:
            raise RuntimeError(f"plaintext {key} needed at two levels/scales")
        self.spec[key] = spec

    def mul_plain(self, ct, key):
        """Multiply by plaintext ``key`` (weights/masks at the next prime's scale)."""
        lvl, sc, size = ct
        ps = self._drop_prime(lvl) if key.role == "mul" else sc
        if self.defer and key.role == "mul":
            ps = _check_deferred(ps / sc if key.stage == 0 else ps * self.fresh[1] / sc,
                                 f"plaintext {key}")
        self._need(key, (lvl, ps))
        return (lvl, sc * ps, size)

    def mul_cipher(self, ct, key):
        """Multiply by weight ciphertext ``key`` (size 3 until relinearised)."""
        lvl, sc, _ = ct
        ps = self._drop_prime(lvl)
        self._need(key, (lvl, ps))
        return (lvl, sc * ps, 3)

    def mul_plain_add(self, acc, ct, key):
        """``acc + ct * pt[key]`` (the fused form of :meth:`mul_plain` and :meth:`add`)."""
        return self.add(acc, self.mul_plain(ct, key))

    def add(self, a, b):
        """Add two ciphertexts: same level and scale required."""
        if a[0] != b[0] or not math.isclose(a[1], b[1], rel_tol=1e-12, abs_tol=0.0):
            raise RuntimeError(f"add of mismatched ciphertexts {a} {b}")
        return (a[0], a[1], max(a[2], b[2]))

    def add_plain(self, ct, key):
        """Add plaintext ``key`` at the ciphertext's exact level and scale."""
        self._need(key, (ct[0], ct[1]))
        return ct

    add_cipher = add_plain

    def rotate(self, ct, step):
        """Rotate (needs a relinearised ciphertext)."""
        if ct[2] != 2:
            raise RuntimeError("rotation of a ciphertext that is not relinearised")
        return ct

    def rescale(self, ct):
        """Drop the next prime: level + 1, scale / prime.

        A scale left more than ``2**8`` below the input scale is an error:
        the primes do not match the scale (e.g. a chain laid out for a
        deferred first rescale, run without deferral), and every later
        result would carry the coarser scale's error.
        """
        lvl, sc, size = ct
        q = self._drop_prime(lvl)
        if sc / q < self.fresh[1] * 2.0 ** -8:
            raise ValueError(f"a rescale by a {math.log2(q):.0f}-bit prime leaves scale "
                             f"2**{math.log2(sc / q):.1f}, far below the input scale "
                             f"2**{math.log2(self.fresh[1]):.0f}: the coefficient modulus does "
                             f"not match this evaluation")
        self.max_level = max(self.max_level, lvl + 1)
        return (lvl + 1, sc / q, size)

    def square(self, ct):
        """Square: scale squared, size 3."""
        return (ct[0], ct[1] * ct[1], 3)

    def negate(self, ct):
        """Negate (no change of level or scale)."""
        return ct

    def relinearize(self, ct):
        """Back to size 2."""
        return (ct[0], ct[1], 2)


class NumpyBackend:
    """The op sequence on float64 slot vectors (no encryption).

    Parameters
    ----------
    plaintexts : dict
        PtKey -> slot vector (or one value, broadcast over the slots).
    """

    def __init__(self, plaintexts):
        self.pts = plaintexts

    def level(self, ct):
        """Slot vectors have no level: always 0."""
        return 0

    def mul_plain(self, ct, key):
        """Element-wise product with plaintext ``key``."""
        return ct * self.pts[key]

    mul_cipher = mul_plain

    def mul_plain_add(self, acc, ct, key):
        """``acc + ct * pt[key]``."""
        return acc + ct * self.pts[key]

    def add(self, a, b):
        """Element-wise sum."""
        return a + b

    def add_plain(self, ct, key):
        """Element-wise sum with plaintext ``key``."""
        return ct + self.pts[key]

    add_cipher = add_plain

    def rotate(self, ct, step):
        """Cyclic left rotation by ``step`` slots (SEAL's convention)."""
        return np.roll(ct, -step)

    def rescale(self, ct):
        """No-op on exact values."""
        return ct

    def square(self, ct):
        """Element-wise square."""
        return ct * ct

    def negate(self, ct):
        """Element-wise negation."""
        return -ct

    def relinearize(self, ct):
        """No-op on exact values."""
        return ct
