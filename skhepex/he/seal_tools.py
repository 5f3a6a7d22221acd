"""Small helpers around TenSEAL's SEAL bindings (``tenseal.sealapi``).

SEAL objects (de)serialise only through files (``save``/``load``); Galois keys
must be created from Galois *elements* (``create_galois_keys([1, 2])`` would
silently mean other steps); ``multiply_plain`` needs the plaintext encoded at
the ciphertext's ``parms_id``.  Everything here imports TenSEAL, so only the
client, the server and the SEAL backend import this module.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import numpy as np
import tenseal as ts
import tenseal.sealapi as sealapi

__all__ = ["save_seal", "load_seal", "level_ids", "make_context", "PublicContext",
           "galois_elements", "ScalarPlain", "encode_vector", "encode_plaintexts",
           "check_plan_context"]


#: Directory of the short-lived files SEAL's path-only ``save``/``load`` bindings
#: need: memory-backed ``/dev/shm`` when writable (only public objects --
#: ciphertexts, public and Galois keys -- pass through), else the default; a
#: write that fails there (e.g. a container's small /dev/shm) is retried on disk.
SEAL_TMP_DIR = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def save_seal(obj) -> bytes:
    """Bytes of a SEAL object (ciphertext, Galois keys, ...) in SEAL's own format.

    Parameters
    ----------
    obj : sealapi object with ``save(path)``

    Returns
    -------
    data : bytes
    """
    try:
        return _save_in(obj, SEAL_TMP_DIR)
    except (OSError, RuntimeError):
        if SEAL_TMP_DIR is None:
            raise
        return _save_in(obj, None)      # e.g. a small /dev/shm (containers): the disk


def _save_in(obj, directory):
    fd, path = tempfile.mkstemp(prefix="skhepex_", dir=directory)
    os.close(fd)
    try:
        obj.save(path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def load_seal(obj, seal_ctx, data):
    """Load SEAL bytes into ``obj`` (validated by SEAL against ``seal_ctx``).

    Parameters
    ----------
    obj : sealapi object with ``load(context, path)``
    seal_ctx : sealapi.SEALContext
    data : bytes

    Returns
    -------
    obj
    """
    try:
        return _load_in(obj, seal_ctx, data, SEAL_TMP_DIR)
    except OSError:                     # no room in /dev/shm: the disk
        if SEAL_TMP_DIR is None:
            raise
        return _load_in(obj, seal_ctx, data, None)


def _load_in(obj, seal_ctx, data, directory):
    fd, path = tempfile.mkstemp(prefix="skhepex_", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(bytes(data))
        obj.load(seal_ctx, path)
    finally:
        os.unlink(path)
    return obj


def level_ids(seal_ctx):
    """``parms_id`` of every level (0 = fresh / first data level).

    Parameters
    ----------
    seal_ctx : sealapi.SEALContext

    Returns
    -------
    ids : list
    """
    ids = []
    cd = seal_ctx.first_context_data()
    while cd is not None:
        ids.append(cd.parms_id())
        cd = cd.next_context_data()
    return ids


def make_context(params):
    """A private TenSEAL CKKS context (secret, public and relinearisation keys).

    Parameters
    ----------
    params : CKKSParams

    Returns
    -------
    context : tenseal.Context
    """
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, params.poly_modulus_degree,
                     coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes))
    ctx.global_scale = params.scale
    return ctx


class PublicContext:
    """The public half of a private TenSEAL context, sharing its SEAL context.

    What a :class:`~skhepex.he.server.ServerModel` built in the client's
    process needs -- the SEAL context (parameters and precomputed tables,
    no key), the public and relinearisation keys, the public serialization
    -- without a second SEAL context: ``tenseal.Context.copy()`` followed by
    ``make_context_public`` costs about 80 MB at N=16384.  It holds no
    reference to the secret key and answers the public-context methods the
    server uses the way a public ``tenseal.Context`` does.

    Parameters
    ----------
    context : tenseal.Context
        A private context; only its public parts are kept.
    """

    def __init__(self, context):
        self._seal_context = context.seal_context()
        self._public_key = context.public_key()
        self._relin_keys = context.relin_keys() if context.has_relin_keys() else None
        self._bytes = context.serialize(save_public_key=True, save_secret_key=False,
                                        save_galois_keys=False, save_relin_keys=True)

    def seal_context(self):
        """The shared SEAL context wrapper (``.data`` is the ``sealapi.SEALContext``)."""
        return self._seal_context

    def public_key(self):
        """The public key wrapper (``.data`` is the ``sealapi.PublicKey``)."""
        return self._public_key

    def has_relin_keys(self) -> bool:
        """Whether relinearisation keys are held."""
        return self._relin_keys is not None

    def relin_keys(self):
        """The relinearisation keys wrapper (``.data`` is the ``sealapi.RelinKeys``)."""
        if self._relin_keys is None:
            raise ValueError("the context holds no relinearisation keys")
        return self._relin_keys

    @staticmethod
    def has_secret_key() -> bool:
        """Always ``False``."""
        return False

    @staticmethod
    def is_private() -> bool:
        """Always ``False``."""
        return False

    @staticmethod
    def is_public() -> bool:
        """Always ``True``."""
        return True

    @staticmethod
    def secret_key():
        """Raise: a public context holds no secret key.

        Raises
        ------
        ValueError
            Always.
        """
        raise ValueError("the current context is public, it doesn't hold a secret key")

    def serialize(self, save_public_key=True, save_secret_key=False, save_galois_keys=False,
                  save_relin_keys=True) -> bytes:
        """TenSEAL bytes of the public context (public and relinearisation keys).

        Parameters
        ----------
        save_public_key, save_relin_keys : bool, default=True
            Must be ``True`` (the bytes always hold both).
        save_secret_key, save_galois_keys : bool, default=False
            Must be ``False`` (there is no secret key; Galois keys travel
            separately).

        Returns
        -------
        data : bytes
            Readable by ``tenseal.context_from``.
        """
        if not (save_public_key and save_relin_keys) or save_secret_key or save_galois_keys:
            raise ValueError("a PublicContext serializes its public and relinearisation keys "
                             "only")
        return self._bytes


def galois_elements(seal_ctx, steps):
    """Galois elements of rotation ``steps`` (what ``create_galois_keys`` expects).

    Parameters
    ----------
    seal_ctx : sealapi.SEALContext
    steps : iterable of int

    Returns
    -------
    elements : list of int
    """
    gt = seal_ctx.key_context_data().galois_tool()
    return [gt.get_elt_from_step(int(s)) for s in steps]


@dataclass
class ScalarPlain:
    """A plaintext that is one value in every slot, encoded when used (1x1 tiles)."""

    value: float
    parms_id: object
    scale: float


def encode_vector(encoder, vec, parms_id, scale, pt):
    """Encode a slot vector, or a length-1 vector as that value in every slot.

    Parameters
    ----------
    encoder : sealapi.CKKSEncoder
    vec : array-like
    parms_id : level id
    scale : float
    pt : sealapi.Plaintext
        Written in place.

    Returns
    -------
    pt : sealapi.Plaintext
    """
    vec = np.asarray(vec, dtype=np.float64).reshape(-1)
    if vec.shape[0] == 1:
        encoder.encode(float(vec[0]), parms_id, scale, pt)
    else:
        encoder.encode(vec.tolist(), parms_id, scale, pt)
    return pt


def encode_plaintexts(plan, seal_ctx, skip=()):
    """Encode every plaintext of ``plan`` at its level and scale.

    Parameters
    ----------
    plan : CompiledPlan
    seal_ctx : sealapi.SEALContext
    skip : iterable of PtKey
        Keys not to encode (encrypted weights).

    Returns
    -------
    plaintexts : dict
        PtKey -> sealapi.Plaintext, or :class:`ScalarPlain` for 1x1 tiles.
    """
    enc = sealapi.CKKSEncoder(seal_ctx)
    ids = level_ids(seal_ctx)
    skip = set(skip)
    out = {}
    for key, (lvl, scale) in plan.pt_spec.items():
        if key in skip:
            continue
        if plan.scalar_plaintexts:
            out[key] = ScalarPlain(float(plan.plaintexts[key][0]), ids[lvl], float(scale))
        else:
            out[key] = encode_vector(enc, plan.plaintexts[key], ids[lvl], scale,
                                     sealapi.Plaintext())
    return out


def check_plan_context(plan, seal_ctx):
    """Raise ``ValueError`` unless the context's primes are the plan's.

    Parameters
    ----------
    plan : CompiledPlan
    seal_ctx : sealapi.SEALContext
    """
    got = [m.value() for m in seal_ctx.first_context_data().parms().coeff_modulus()]
    if list(got) != list(plan.primes):
        raise ValueError("the context's primes differ from the compiled plan's")
