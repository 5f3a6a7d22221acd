"""What travels between client and server: encrypted batches and results.

Every batch and result is *bound*: it carries the fingerprint of the public
key it was encrypted under (``key_id``) and of the plan it was packed for
(``plan_id``); the server refuses a batch for another key or plan and the
client refuses a result that does not answer its own request.  Loading checks
the index against the plan, and every ciphertext's byte length against the
size a ciphertext of these parameters has, *before* SEAL allocates anything:
a crafted batch cannot make the loader allocate much more than a legitimate
one of the same length.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Dict, List

from .serialization import SerializationError, pack, plan_to_payload, unpack

__all__ = ["EncryptedBatch", "EncryptedResult", "plan_fingerprint", "BindingError",
           "MAX_SAMPLES"]

#: Most samples one batch may declare.
MAX_SAMPLES = 1 << 31
#: Largest JSON header of a batch or result (an index of small ints and a few
#: measurements; header parsing takes up to ~20x this in memory).
MAX_HEADER_BYTES = 1 << 20


class BindingError(ValueError):
    """A batch or result that belongs to another key, plan or request."""


def plan_fingerprint(plan) -> str:
    """SHA-256 of the server-visible part of a plan (identical on client and server).

    Parameters
    ----------
    plan : CompiledPlan

    Returns
    -------
    fingerprint : str
        Hex digest.
    """
    header, arrays = plan_to_payload(plan, drop_keys=plan.encrypted_keys(),
                                     drop_constants=plan.encrypted_weights)
    header = dict(header, op_counts=[], level_ops=[])
    return hashlib.sha256(pack("PlanFingerprint", header, arrays)).hexdigest()


def _ct_bounds(plan, level):
    """(min, max) serialized bytes of a size-2 ciphertext at ``level``."""
    n_primes = len(plan.primes) - level
    raw = 2 * n_primes * plan.params.poly_modulus_degree * 8
    return raw // 2, raw + 4096


@dataclass
class EncryptedBatch:
    """Encrypted input: per batch of ``plan.batch`` samples, one ciphertext per chunk.

    Attributes
    ----------
    batches : list of dict
        Chunk index -> SEAL ciphertext.
    n_samples : int
        Samples encrypted.
    plan_id : str
        Fingerprint of the plan the batch is packed for.
    key_id : str
        Fingerprint of the public key it is encrypted under.
    """

    batches: List[Dict[int, object]]
    n_samples: int
    plan_id: str = ""
    key_id: str = ""

    _kind = "EncryptedBatch"

    def _fields(self):
        return dict(n_samples=int(self.n_samples), plan_id=self.plan_id, key_id=self.key_id)

    def serialize(self) -> bytes:
        """Bytes of all ciphertexts (SEAL's format) in the checksummed container.

        Returns
        -------
        data : bytes
            The header (sample count, fingerprints, chunk index per batch;
            for a result also its tag and stats) and one SEAL-serialized
            ciphertext per batch and chunk; read back with :meth:`load`.
        """
        from .seal_tools import save_seal

        arrays, index = {}, []
        for bi, d in enumerate(self.batches):
            index.append([int(q) for q in d])
            for q, ct in d.items():
                arrays[f"{bi}_{q}"] = save_seal(ct)
        return pack(self._kind, dict(self._fields(), index=index), arrays)

    @classmethod
    def _expected(cls, plan):
        """(chunk indices per batch, level of the ciphertexts)."""
        return sorted(plan.stages[0].live_in), 0

    @classmethod
    def _extra(cls, fields):
        return {}

    @classmethod
    def load(cls, data, context, plan):
        """Load with a TenSEAL context of the plan's parameters, validating first.

        Parameters
        ----------
        data : bytes
            Output of :meth:`serialize` (untrusted).
        context : tenseal.Context
            Public (server) or private (client) context.
        plan : CompiledPlan
            The plan the bytes must belong to: the index, the sample count and
            every ciphertext's size are checked against it before loading.

        Returns
        -------
        batch : EncryptedBatch or EncryptedResult

        Raises
        ------
        SerializationError
            Malformed or corrupted bytes.
        """
        import tenseal.sealapi as sealapi

        from .seal_tools import load_seal

        h, arrays = unpack(data, cls._kind, max_header_bytes=MAX_HEADER_BYTES)
        try:
            n = int(h["n_samples"])
            index = [[int(q) for q in qs] for qs in h["index"]]
            plan_id, key_id = str(h["plan_id"]), str(h["key_id"])
            extra = cls._extra(h)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(f"malformed {cls._kind}: {exc}") from None
        chunks, level = cls._expected(plan)
        if not 0 <= n <= MAX_SAMPLES or len(index) != -(-n // plan.batch):
            raise SerializationError(f"{cls._kind}: {len(index)} ciphertext batches for "
                                     f"{n} samples do not match the plan "
                                     f"({plan.batch} samples per ciphertext)")
        if any(sorted(qs) != chunks for qs in index):
            raise SerializationError(f"{cls._kind}: chunk index does not match the plan")
        lo, hi = _ct_bounds(plan, level)
        for bi, qs in enumerate(index):
            for q in qs:
                a = arrays.get(f"{bi}_{q}")
                if a is None or not lo <= a.size <= hi:
                    raise SerializationError(f"{cls._kind}: ciphertext {bi}_{q} has "
                                             f"{0 if a is None else a.size} bytes, outside "
                                             f"[{lo}, {hi}] for these parameters")
        sd = context.seal_context().data
        try:
            batches = [{q: load_seal(sealapi.Ciphertext(), sd, arrays[f"{bi}_{q}"].tobytes())
                        for q in qs} for bi, qs in enumerate(index)]
        except (RuntimeError, ValueError) as exc:
            raise SerializationError(f"{cls._kind}: invalid ciphertext ({exc})") from None
        for d in batches:
            for ct in d.values():
                if len(plan.primes) - ct.coeff_modulus_size() != level or ct.size() != 2:
                    raise SerializationError(f"{cls._kind}: ciphertext at the wrong level")
        return cls(batches, n, plan_id, key_id, **extra)


@dataclass
class EncryptedResult(EncryptedBatch):
    """Encrypted output of :meth:`ServerModel.evaluate`, with its measurements.

    Attributes
    ----------
    batches : list of dict
        Per batch of ``plan.batch`` samples: output chunk index -> SEAL
        ciphertext (one per live output tile-row of the last stage).
    n_samples : int
        Samples of the request it answers.
    plan_id : str
        Fingerprint of the plan that evaluated it.
    key_id : str
        Fingerprint of the public key it is encrypted under.
    tag : str
        Which server model produced it (``"predict"``, ``"transform"``).
    stats : dict
        Measurements of the evaluation: ``stage_seconds`` (list, all
        batches), ``op_counts`` (per stage, per batch), ``n_batches``.
    """

    tag: str = ""
    stats: dict = field(default_factory=dict)

    _kind = "EncryptedResult"

    def _fields(self):
        return dict(super()._fields(), tag=self.tag, stats=self.stats)

    @classmethod
    def _expected(cls, plan):
        return sorted(r.p for r in plan.stages[-1].rows), plan.depth

    @classmethod
    def _extra(cls, fields):
        stats = fields.get("stats", {})
        if not isinstance(stats, dict):
            raise TypeError("stats must be a dict")
        return dict(tag=str(fields["tag"]), stats=stats)
