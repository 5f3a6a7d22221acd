"""Server side of encrypted inference: public keys and the packed model, no secret.

:class:`ServerModel` is re-entrant: :meth:`ServerModel.evaluate` keeps nothing
per call (measurements travel with the result), so one server object can serve
concurrent requests (SEAL's evaluator is thread-safe; the bindings hold the
GIL, so threads interleave rather than run in parallel).
"""
from __future__ import annotations

import hashlib
import os

import numpy as np
import tenseal as ts
import tenseal.sealapi as sealapi

from .costs import memory_estimate
from .program import CountingBackend, run_program
from .seal_backend import SealBackend
from .seal_tools import check_plan_context, encode_plaintexts, load_seal, save_seal
from .serialization import SerializationError, pack, plan_from_payload, plan_to_payload, unpack
from .wire import BindingError, EncryptedBatch, EncryptedResult, plan_fingerprint

__all__ = ["ServerModel", "key_fingerprint"]


def key_fingerprint(context) -> str:
    """SHA-256 of a TenSEAL context's public key (same on client and server).

    Parameters
    ----------
    context : tenseal.Context

    Returns
    -------
    fingerprint : str
        Hex digest.
    """
    return hashlib.sha256(save_seal(context.public_key().data)).hexdigest()


class ServerModel:
    """Server side: public context, Galois/relin keys and the packed model.

    Holds no secret key.  Build with :meth:`Client.server_model` or
    :meth:`ServerModel.load`.

    Parameters
    ----------
    plan : CompiledPlan
        With ``encrypt_weights``, a plan without the weight/bias vectors.
    public_context : tenseal.Context or PublicContext
        Context without secret key (raises otherwise): a public
        ``tenseal.Context`` (:meth:`load`) or the
        :class:`~skhepex.he.seal_tools.PublicContext` of a client in the
        same process (:meth:`Client.server_model`), which shares the
        client's SEAL context.
    galois_keys : sealapi.GaloisKeys
        Keys for exactly the plan's rotation steps.
    weight_ciphertexts : dict, optional
        PtKey -> SEAL ciphertext of each weight tile / bias (``encrypt_weights``).
    name : str, default=""
        Tag copied to every :class:`EncryptedResult`.

    Attributes
    ----------
    plan : CompiledPlan
    context : tenseal.Context or PublicContext
        Public context.
    plan_id, key_id : str
        Fingerprints every batch must carry.
    """

    _kind = "ServerModel"

    def __init__(self, plan, public_context, galois_keys, weight_ciphertexts=None, name=""):
        if public_context.has_secret_key():
            raise ValueError("ServerModel must get a public context (no secret key)")
        self.plan = plan
        self.name = str(name)
        self.context = public_context
        self._sd = public_context.seal_context().data
        check_plan_context(plan, self._sd)
        self.galois_keys = galois_keys
        self._evaluator = sealapi.Evaluator(self._sd)
        enc_keys = plan.encrypted_keys()
        self.weight_ciphertexts = dict(weight_ciphertexts or {})
        missing = set(enc_keys) - set(self.weight_ciphertexts)
        if missing:
            raise ValueError(f"{len(missing)} weight ciphertexts missing for an "
                             f"encrypt_weights plan")
        self._pts = encode_plaintexts(plan, self._sd, skip=enc_keys)
        self._relin = (public_context.relin_keys().data if public_context.has_relin_keys()
                       else None)
        self.plan_id = plan_fingerprint(plan)
        self.key_id = key_fingerprint(public_context)

    def evaluate(self, enc) -> EncryptedResult:
        """Evaluate the network on an encrypted batch.

        Parameters
        ----------
        enc : EncryptedBatch or bytes
            Ciphertexts packed for this server's plan under this server's key.

        Returns
        -------
        result : EncryptedResult
            Encrypted outputs; ``result.stats`` holds the measured seconds per
            stage and the ops executed per batch.

        Raises
        ------
        BindingError
            The batch was packed for another plan or encrypted under another key.
        """
        if isinstance(enc, (bytes, bytearray, memoryview)):
            enc = self.load_batch(enc)
        if enc.plan_id != self.plan_id:
            raise BindingError("the batch was packed for another plan (tile layout, request "
                               "size or model) than this server's")
        if enc.key_id != self.key_id:
            raise BindingError("the batch was encrypted under another key than this "
                               "server's public key")
        inner = SealBackend(self._sd, self._evaluator, self._pts, self.galois_keys,
                            self._relin, len(self.plan.primes), self.weight_ciphertexts)
        be = CountingBackend(inner, scalar_plaintexts=self.plan.scalar_plaintexts)
        seconds = np.zeros(len(self.plan.stages))

        def timer(s_i, dt):
            seconds[s_i] += dt

        outs = [run_program(self.plan.stages, dict(chunks), be, timer)
                for chunks in enc.batches]
        nb = max(len(enc.batches), 1)
        stats = dict(n_batches=len(enc.batches), stage_seconds=[float(s) for s in seconds],
                     op_counts=[{k: v // nb for k, v in t.items()} for t in be.totals()])
        return EncryptedResult(outs, enc.n_samples, self.plan_id, self.key_id,
                               tag=self.name, stats=stats)

    def load_batch(self, data) -> EncryptedBatch:
        """Load an :class:`EncryptedBatch` from untrusted bytes, validated against the plan.

        Parameters
        ----------
        data : bytes
            Output of :meth:`EncryptedBatch.serialize` from a client
            (untrusted: index, sample count and ciphertext sizes are checked
            against this server's plan before SEAL loads anything).

        Returns
        -------
        batch : EncryptedBatch
            The batch with its ciphertexts loaded under the public context;
            its fingerprints are checked by :meth:`evaluate`.
        """
        return EncryptedBatch.load(data, self.context, self.plan)

    def memory_report(self) -> dict:
        """Bytes of packed plaintexts/ciphertexts, Galois keys, relin keys, one input batch.

        Returns
        -------
        report : dict
            See :func:`~skhepex.he.costs.memory_estimate`.
        """
        return memory_estimate(self.plan)

    def serialize(self) -> bytes:
        """Public context + Galois keys + plan (+ weight ciphertexts); no pickle.

        Plaintexts are stored as one tile each and re-encoded on load.

        Returns
        -------
        data : bytes
            Checksummed container with the plan, the public context (public
            and relinearisation keys), the Galois keys (empty without
            rotations), the weight ciphertexts and the name; read back with
            :meth:`load`.
        """
        enc_keys = self.plan.encrypted_keys()
        header, arrays = plan_to_payload(self.plan, drop_keys=enc_keys,
                                         drop_constants=self.plan.encrypted_weights)
        arrays["context"] = self.context.serialize(save_public_key=True, save_secret_key=False,
                                                   save_galois_keys=False,
                                                   save_relin_keys=True)
        # no rotations (e.g. 1x1 tiles): no Galois keys (SEAL cannot load an empty set)
        arrays["galois"] = (save_seal(self.galois_keys) if self.plan.rotation_steps
                            else b"")
        for i, k in enumerate(enc_keys):
            arrays[f"wct{i}"] = save_seal(self.weight_ciphertexts[k])
        header = dict(plan=header, name=self.name, wct_keys=[str(k) for k in enc_keys])
        return pack(self._kind, header, arrays)

    @classmethod
    def load(cls, data) -> "ServerModel":
        """Rebuild from :meth:`serialize` bytes or a file path (re-encodes the plaintexts).

        Parameters
        ----------
        data : bytes or path-like
            Untrusted bytes, or the path of a file holding them.

        Returns
        -------
        server : ServerModel

        Raises
        ------
        SerializationError
            Malformed or corrupted bytes, or a context that carries a secret key.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            if not isinstance(data, (str, os.PathLike)):
                raise TypeError(f"ServerModel.load takes bytes or a file path, got "
                                f"{type(data).__name__}")
            with open(data, "rb") as f:
                data = f.read()
        h, arrays = unpack(data, cls._kind)
        try:
            plan = plan_from_payload(h["plan"], arrays)
            ctx = ts.context_from(arrays["context"].tobytes())
        except SerializationError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, OverflowError) as exc:
            raise SerializationError(f"malformed server model: {exc}") from None
        if ctx.has_secret_key():
            raise SerializationError("a server model must not carry a secret key")
        sd = ctx.seal_context().data
        try:
            check_plan_context(plan, sd)
            gk = (load_seal(sealapi.GaloisKeys(), sd, arrays["galois"].tobytes())
                  if arrays["galois"].size else sealapi.GaloisKeys())
            from .plan import PtKey

            wcts = {PtKey.parse(k): load_seal(sealapi.Ciphertext(), sd,
                                              arrays[f"wct{i}"].tobytes())
                    for i, k in enumerate(h["wct_keys"])}
        except (KeyError, TypeError, ValueError, RuntimeError, OverflowError) as exc:
            raise SerializationError(f"malformed server model: {exc}") from None
        return cls(plan, ctx, gk, wcts, str(h.get("name", "")))
