"""The SEAL backend of the op sequence (server side: public keys only)."""
from __future__ import annotations

import tenseal.sealapi as sealapi

from .seal_tools import ScalarPlain

__all__ = ["SealBackend"]


class SealBackend:
    """Run the op sequence with SEAL's evaluator.

    Parameters
    ----------
    seal_ctx : sealapi.SEALContext
    evaluator : sealapi.Evaluator
    plaintexts : dict
        PtKey -> encoded plaintext (or :class:`~skhepex.he.seal_tools.ScalarPlain`).
    galois_keys : sealapi.GaloisKeys
    relin_keys : sealapi.RelinKeys or None
    n_primes : int
        Data primes of the chain (levels are counted from the top).
    weight_ciphertexts : dict, optional
        PtKey -> ciphertext of encrypted weights and biases.
    """

    def __init__(self, seal_ctx, evaluator, plaintexts, galois_keys, relin_keys, n_primes,
                 weight_ciphertexts=None):
        self.sd, self.ev, self.pts = seal_ctx, evaluator, plaintexts
        self.gk, self.rk, self.L = galois_keys, relin_keys, n_primes
        self.wcts = weight_ciphertexts or {}
        self.encoder = sealapi.CKKSEncoder(seal_ctx)
        self._scratch = sealapi.Plaintext()
        self._product = None          # reused by mul_plain_add (no allocation per tile)

    def level(self, ct):
        """Level of ``ct`` (0 = fresh)."""
        return self.L - ct.coeff_modulus_size()

    def _pt(self, key):
        pt = self.pts[key]
        if isinstance(pt, ScalarPlain):      # 1x1 tiles: encode the value now
            self.encoder.encode(pt.value, pt.parms_id, pt.scale, self._scratch)
            return self._scratch
        return pt

    def mul_plain(self, ct, key):
        """``ct * pt[key]`` into a new ciphertext."""
        out = sealapi.Ciphertext(self.sd)
        self.ev.multiply_plain(ct, self._pt(key), out)
        return out

    def mul_plain_add(self, acc, ct, key):
        """``acc += ct * pt[key]``, the product in a buffer reused across calls."""
        if self._product is None:
            self._product = sealapi.Ciphertext(self.sd)
        self.ev.multiply_plain(ct, self._pt(key), self._product)
        self.ev.add_inplace(acc, self._product)
        return acc

    def mul_cipher(self, ct, key):
        """``ct * wct[key]`` (encrypted weights) into a new ciphertext."""
        out = sealapi.Ciphertext(self.sd)
        self.ev.multiply(ct, self.wcts[key], out)
        return out

    def add(self, a, b):
        """``a += b``."""
        self.ev.add_inplace(a, b)
        return a

    def add_plain(self, ct, key):
        """``ct += pt[key]``."""
        self.ev.add_plain_inplace(ct, self._pt(key))
        return ct

    def add_cipher(self, ct, key):
        """``ct += wct[key]``."""
        self.ev.add_inplace(ct, self.wcts[key])
        return ct

    def rotate(self, ct, step):
        """Rotation by ``step`` slots into a new ciphertext."""
        out = sealapi.Ciphertext(self.sd)
        self.ev.rotate_vector(ct, step, self.gk, out)
        return out

    def rescale(self, ct):
        """Rescale in place to the next level."""
        self.ev.rescale_to_next_inplace(ct)
        return ct

    def square(self, ct):
        """Square into a new (size 3) ciphertext."""
        out = sealapi.Ciphertext(self.sd)
        self.ev.square(ct, out)
        return out

    def negate(self, ct):
        """Negate in place."""
        self.ev.negate_inplace(ct)
        return ct

    def relinearize(self, ct):
        """Relinearise in place."""
        self.ev.relinearize_inplace(ct, self.rk)
        return ct
