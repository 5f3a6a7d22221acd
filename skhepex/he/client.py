"""Client side of encrypted inference: the key owner.

The client encrypts inputs (with the secret key: symmetric encryption is
about twice as fast as public-key encryption and gives the same ciphertexts
to the server), decrypts results and builds the server package.  Batches are
stamped with the fingerprints of the plan and of the public key; results are
checked against the request they answer.
"""
from __future__ import annotations

import numpy as np
import tenseal as ts
import tenseal.sealapi as sealapi

from .bounds import PrecisionError, decryptable_bound
from .key_file import read_key_file
from .packing import decode_output, encode_input, sentinel_deviation, zero_input_slots
from .seal_tools import (PublicContext, check_plan_context, encode_vector, galois_elements,
                         level_ids, make_context)
from .serialization import plan_from_payload, plan_to_payload
from .server import ServerModel, key_fingerprint
from .wire import BindingError, EncryptedBatch, EncryptedResult, plan_fingerprint

__all__ = ["Client", "SENTINEL_TOLERANCE"]

#: Largest deviation accepted on a slot whose value is known in advance (CKKS
#: noise is orders of magnitude smaller; a wrap-around moves it by about the
#: decryptable range, at least 2**7).
SENTINEL_TOLERANCE = 0.05


class Client:
    """Key owner: encrypts inputs, decrypts outputs, builds the server model.

    Parameters
    ----------
    plan : CompiledPlan
        The main plan; its parameters define the context.
    extra_plans : list of CompiledPlan, optional
        Further plans with the same parameters (e.g. the encoder of an
        autoencoder) that share the keys; Galois keys cover the union of their
        rotation steps.
    context : tenseal.Context, optional
        An existing private context (restored keys) instead of fresh keys.

    Attributes
    ----------
    context : tenseal.Context
        Private context (secret key, public key, relin keys).
    galois_keys : sealapi.GaloisKeys
        Keys for exactly the plans' rotation steps, generated on first use
        (:meth:`server_model` needs them; encrypting and decrypting do not, so
        a client process restored with :meth:`load` never holds them).
    key_id : str
        Fingerprint of the public key.
    """

    def __init__(self, plan, extra_plans=(), context=None):
        self.plan = plan
        self.context = make_context(plan.params) if context is None else context
        if not self.context.has_secret_key():
            raise ValueError("a Client needs a private context (with the secret key)")
        self._sd = self.context.seal_context().data
        steps = set(plan.rotation_steps)
        for p in extra_plans:
            if p.params != plan.params:
                raise ValueError("extra plans must share the CKKS parameters")
            steps |= set(p.rotation_steps)
        for p in (plan, *extra_plans):
            check_plan_context(p, self._sd)
        self.rotation_steps = sorted(steps)
        sk = self.context.secret_key().data
        self._keygen = sealapi.KeyGenerator(self._sd, sk)
        self._galois = {}
        self._encoder = sealapi.CKKSEncoder(self._sd)
        self._encryptor = sealapi.Encryptor(self._sd, sk)
        self._decryptor = sealapi.Decryptor(self._sd, sk)
        self._ids = level_ids(self._sd)
        self.key_id = key_fingerprint(self.context)
        self._plan_ids = {}
        self._zero = {}
        self._public = None

    def plan_id(self, plan=None) -> str:
        """Fingerprint of ``plan`` (default: the main plan), cached.

        Parameters
        ----------
        plan : CompiledPlan, optional
            Plan to fingerprint (cached by object identity).

        Returns
        -------
        fingerprint : str
            Hex SHA-256 digest of the server-visible part of ``plan`` (see
            :func:`~skhepex.he.wire.plan_fingerprint`), the ``plan_id`` that
            batches and results carry.
        """
        plan = self.plan if plan is None else plan
        if id(plan) not in self._plan_ids:
            self._plan_ids[id(plan)] = (plan, plan_fingerprint(plan))
        return self._plan_ids[id(plan)][1]

    def _galois_keys(self, steps):
        keys = sealapi.GaloisKeys()
        if steps:
            self._keygen.create_galois_keys(galois_elements(self._sd, steps), keys)
        return keys

    @property
    def galois_keys(self):
        """Galois keys for the plans' rotation steps (generated on first use)."""
        steps = tuple(self.rotation_steps)
        if steps not in self._galois:
            self._galois[steps] = self._galois_keys(list(steps))
        return self._galois[steps]

    def galois_keys_for(self, plan):
        """Galois keys covering ``plan``'s rotations (this client's key; cached).

        Parameters
        ----------
        plan : CompiledPlan
            A plan with this client's parameters, e.g. one packed later for
            another request size.

        Returns
        -------
        keys : sealapi.GaloisKeys
            :attr:`galois_keys` when they cover the plan, else keys for
            exactly its rotation steps.
        """
        steps = tuple(plan.rotation_steps)
        if set(steps) <= set(self.rotation_steps):
            return self.galois_keys
        if steps not in self._galois:
            self._galois[steps] = self._galois_keys(list(steps))
        return self._galois[steps]

    def public_context(self):
        """The public half of the context: no secret key (cached).

        Returns
        -------
        context : PublicContext
            The public and relinearisation keys and this client's SEAL
            context (shared, not copied); no secret key, no Galois keys
            (those are passed separately).
        """
        if self._public is None:
            self._public = PublicContext(self.context)
        return self._public

    def _encrypt_vec(self, vec, lvl=0, scale=None):
        pt = sealapi.Plaintext()
        scale = self.plan.params.scale if scale is None else scale
        encode_vector(self._encoder, vec, self._ids[lvl], scale, pt)
        ct = sealapi.Ciphertext(self._sd)
        self._encryptor.encrypt_symmetric(pt, ct)
        return ct

    def server_model(self, plan=None, name="") -> ServerModel:
        """ServerModel with public context, Galois keys and the packed model.

        With ``plan.encrypted_weights`` the weight tiles and biases are
        encrypted here (under this client's key, at the level and scale each
        meets) and removed from the server's copy of the plan.

        Parameters
        ----------
        plan : CompiledPlan, optional
            Default: the main plan.
        name : str, default=""
            Tag of the server's results.

        Returns
        -------
        server : ServerModel
            Public context, this client's Galois keys and the packed ``plan``
            (with the weight ciphertexts if ``plan.encrypted_weights``).
        """
        plan = self.plan if plan is None else plan
        check_plan_context(plan, self._sd)
        galois = self.galois_keys_for(plan)
        wcts = {}
        enc_keys = plan.encrypted_keys()
        if enc_keys:
            for k in enc_keys:
                lvl, scale = plan.pt_spec[k]
                wcts[k] = self._encrypt_vec(plan.plaintexts[k], lvl, scale)
            plan = plan_from_payload(*plan_to_payload(plan, drop_keys=enc_keys,
                                                      drop_constants=True))
        return ServerModel(plan, self.public_context(), galois, wcts, name)

    def encrypt(self, X, plan=None) -> EncryptedBatch:
        """Encode (replication along the tile, batch along k) and encrypt X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Encoded network inputs.
        plan : CompiledPlan, optional
            Plan to pack for (default: the main plan).

        Returns
        -------
        batch : EncryptedBatch
            ``ceil(n_samples / plan.batch)`` batches of one ciphertext per
            live input chunk, stamped with the fingerprints of ``plan`` and of
            this client's public key.
        """
        plan = self.plan if plan is None else plan
        X = np.asarray(X, dtype=np.float64)
        batches = [{q: self._encrypt_vec(vec) for q, vec in d.items()}
                   for d in encode_input(plan, X)]
        return EncryptedBatch(batches, X.shape[0], self.plan_id(plan), self.key_id)

    def load_result(self, data, plan=None) -> EncryptedResult:
        """Load an :class:`EncryptedResult` from untrusted bytes.

        Parameters
        ----------
        data : bytes
            Output of :meth:`EncryptedResult.serialize` (untrusted: validated
            against ``plan`` before any ciphertext is loaded).
        plan : CompiledPlan, optional
            Plan the result must belong to (default: the main plan).

        Returns
        -------
        result : EncryptedResult
            The result with its ciphertexts loaded under the private context.
        """
        return EncryptedResult.load(data, self.context, self.plan if plan is None else plan)

    def decrypt(self, result, plan=None, n_samples=None) -> np.ndarray:
        """Decrypt and decode the raw outputs.

        Parameters
        ----------
        result : EncryptedResult
            Output of :meth:`ServerModel.evaluate` for a batch from
            :meth:`encrypt`; its key, plan and ciphertext index are checked.
        plan : CompiledPlan, optional
            The plan that produced ``result`` (default: the main plan).
        n_samples : int, optional
            Samples of the request this result answers; checked when given.

        Returns
        -------
        Y : ndarray of shape (n_samples, n_outputs)
            Decoded raw network outputs (float64, CKKS-approximate), one row
            per sample of the request, in the plan's output order.

        Raises
        ------
        BindingError
            The result belongs to another key, plan or request.
        PrecisionError
            A slot whose value is known in advance (padding samples, replicated
            copies, padding rows; see :func:`~skhepex.he.packing.sentinel_deviation`)
            decoded wrongly, or a value lies beyond what the parameters decrypt:
            the decryption wrapped around, or the result was corrupted.
        """
        plan = self.plan if plan is None else plan
        if result.key_id != self.key_id:
            raise BindingError("the result was computed under another key")
        if result.plan_id != self.plan_id(plan):
            raise BindingError("the result was computed with another plan than the one "
                               "this request was packed for")
        if n_samples is not None and result.n_samples != n_samples:
            raise BindingError(f"the result holds {result.n_samples} samples, the request "
                               f"had {n_samples}")
        expected = sorted(r.p for r in plan.stages[-1].rows)
        if len(result.batches) != -(-result.n_samples // plan.batch) or any(
                sorted(d) != expected for d in result.batches):
            raise BindingError("the result's ciphertexts do not match the plan")
        out, b = [], plan.batch
        limit = 2.0 * decryptable_bound(plan.params)      # largest decodable magnitude
        for bi, chunks in enumerate(result.batches):
            vecs = {}
            for p, ct in chunks.items():
                pt = sealapi.Plaintext()
                self._decryptor.decrypt(ct, pt)
                vecs[p] = np.asarray(self._encoder.decode_double(pt))
            n = min(b, result.n_samples - bi * b)
            dev, _ = sentinel_deviation(plan, vecs, n, self._zero_slots(plan))
            Y = decode_output(plan, vecs, n)
            top = float(np.max(np.abs(Y), initial=0.0))
            if dev > SENTINEL_TOLERANCE * max(1.0, 1e-3 * top):
                raise PrecisionError(
                    f"decryption of batch {bi} cannot be trusted: slots whose value is known "
                    f"in advance are off by {dev:.3g}; the values exceeded the CKKS range "
                    f"(wrap-around) or the result was corrupted")
            if top >= 0.9 * limit:
                raise PrecisionError(
                    f"decryption of batch {bi} cannot be trusted: an output of magnitude "
                    f"{top:.4g} is at or beyond what these CKKS parameters decrypt reliably "
                    f"({limit:.4g}); scale the inputs like the training data or declare a "
                    f"wider input_range so that the parameters keep more headroom")
            out.append(Y)
        return np.vstack(out) if out else np.zeros((0, plan.n_outputs))

    def _zero_slots(self, plan):
        """Known slot values of all-zero inputs (sentinels), cached per plan."""
        if id(plan) not in self._zero:
            self._zero[id(plan)] = (plan, zero_input_slots(plan))
        return self._zero[id(plan)][1]

    def save_context(self) -> bytes:
        """The private context (secret key included) as TenSEAL bytes.

        Returns
        -------
        data : bytes
            TenSEAL serialization of the context with its public, secret and
            relinearisation keys (Galois keys are left out and regenerated).
        """
        return self.context.serialize(save_public_key=True, save_secret_key=True,
                                      save_galois_keys=False, save_relin_keys=True)

    @classmethod
    def load(cls, path, plan, *, extra_plans=(), password=None) -> "Client":
        """Restore a key owner from a key file, in a process without scikit-learn.

        The file is the one :meth:`skhepex.he.HEPredictor.save_client`
        writes; the plans come from the predictor that wrote it (e.g.
        ``plan_to_bytes(he.plan_)`` read back with
        :func:`~skhepex.he.serialization.plan_from_bytes`).  With the
        :class:`~skhepex.he.ServerModel` loaded elsewhere (``save_server``),
        encrypted inference then needs neither the estimator nor
        scikit-learn.

        Parameters
        ----------
        path : str or path-like
            A client key file.
        plan : CompiledPlan
            One of the plans the keys were saved for (checked by fingerprint).
        extra_plans : list of CompiledPlan, optional
            Further plans sharing the keys (see :class:`Client`).
        password : str, optional
            The password the file was saved with.

        Returns
        -------
        client : Client

        Raises
        ------
        ValueError
            A plan the keys were not saved for, a missing or wrong password,
            or a public key that does not match the file's fingerprint.
        SerializationError
            Not a key file, or an unsupported format version.
        """
        data, header = read_key_file(path, password=password)
        saved = set(header["plans"].values())
        for p in (plan, *extra_plans):
            if plan_fingerprint(p) not in saved:
                raise ValueError("these keys were saved for another model or packing (plan "
                                 "fingerprints differ); load them with the plans of the "
                                 "predictor they were saved from (same estimator, tile "
                                 "shape and parameters)")
        client = cls(plan, extra_plans, context=cls.context_from_bytes(data))
        if client.key_id != header["key_id"]:
            raise ValueError("the key file's public key does not match its fingerprint")
        return client

    @staticmethod
    def context_from_bytes(data):
        """A private TenSEAL context from :meth:`save_context` bytes.

        Parameters
        ----------
        data : bytes
            Output of :meth:`save_context`.

        Returns
        -------
        context : tenseal.Context
            The private context (secret key included).

        Raises
        ------
        ValueError
            ``data`` holds a context without a secret key.
        """
        ctx = ts.context_from(bytes(data))
        if not ctx.has_secret_key():
            raise ValueError("the key file holds no secret key")
        return ctx
