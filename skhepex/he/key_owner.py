"""The key owner's side of :class:`~skhepex.he.HEPredictor`.

Encrypt, decrypt, keep keys across processes (:meth:`KeyOwnerMixin.save_client`
/ :meth:`KeyOwnerMixin.load_client`), hand out the public server package
(:meth:`KeyOwnerMixin.save_server`), and pickle without any key.

The client file (:mod:`~skhepex.he.key_file`) holds the TenSEAL context
*with the secret key*; it is written only by an explicit
:meth:`~KeyOwnerMixin.save_client` call.
"""
from __future__ import annotations

import logging

from sklearn.utils.validation import check_is_fitted

from .key_file import CLIENT_FILE_VERSION, write_key_file
from .serialization import plan_from_bytes, plan_to_bytes
from .wire import plan_fingerprint

__all__ = ["KeyOwnerMixin", "CLIENT_FILE_VERSION"]

logger = logging.getLogger("skhepex")


def cached(cache, key, make):
    """``cache[key]``, computed by ``make()`` on first use.

    Concurrent first uses may each call ``make``; ``setdefault`` keeps one
    result, which every caller gets (a race costs time, never consistency).
    """
    value = cache.get(key)
    return value if value is not None else cache.setdefault(key, make())


class KeyOwnerMixin:
    """Client-side methods of :class:`~skhepex.he.HEPredictor` (the key owner)."""

    def _fitted(self, name):
        """Parameter ``name`` as it was at ``fit``: a ``set_params`` after ``fit``
        takes effect at the next ``fit`` (``n_jobs`` and ``verbose`` at once)."""
        return getattr(self, "_fit_params", {}).get(name, getattr(self, name))

    def _simulated(self):
        """Whether the fitted predictor runs in ``mode="simulate"`` (no keys)."""
        return self._fitted("mode") == "simulate"

    def _setup_backend(self):
        self._servers, self._packages, self._sized_plans, self._clients = {}, {}, {}, {}
        self.client_ = self.server_ = None
        if self._simulated():
            return
        from .client import Client

        extra = [self.transform_plan_] if self.transform_plan_ is not None else []
        self.client_ = Client(self.plan_, extra_plans=extra)
        self.server_ = self.client_.server_model(self.plan_, name="predict")
        self._servers[id(self.plan_)] = self.server_

    def rekey(self):
        """Generate fresh keys and a new server model (e.g. after unpickling).

        Returns
        -------
        self : HEPredictor
            This predictor, with a new ``client_`` (fresh secret, public,
            relinearisation and Galois keys) and ``server_``; batches and
            results made under the previous keys no longer match.
        """
        check_is_fitted(self, "plan_")
        self._setup_backend()
        return self

    # --------------------------------------------------------------- client
    def _check_keys(self):
        check_is_fitted(self, "plan_")
        if not self._simulated() and getattr(self, "client_", None) is None:
            raise RuntimeError("this HEPredictor holds no keys (they are never pickled); call "
                               "rekey() to generate fresh ones")

    def _client_input(self, X):
        """Preprocess and encode X on the client (plaintext)."""
        if self.preprocessor_ is not None:
            X = self.preprocessor_.transform(X)
        X = self.network_estimator_.encode_input(X)
        if X.shape[1] != self.plan_.n_features:
            raise ValueError(f"X has {X.shape[1]} features after preprocessing; the network "
                             f"expects {self.plan_.n_features}")
        return X

    def _plan(self, which):
        if which == "transform":
            if self.transform_plan_ is None:
                raise AttributeError("this network has no transform")
            return self.transform_plan_
        return self.plan_

    def _server(self, which):
        return self._server_for(self._plan(which), which)

    def _client_for(self, plan):
        """The key set of ``plan``: ``client_`` for the fitted CKKS parameters.

        A request-sized plan with parameters of its own gets its own keys,
        generated on first use and kept in this process only (never saved:
        the public encrypt/decrypt/save API works on the fitted plan).
        """
        if plan.params == self.client_.plan.params:
            return self.client_
        from .client import Client

        return cached(self._clients, plan.params, lambda: Client(plan))

    def _server_for(self, plan, which):
        """ServerModel of ``plan`` (fitted or request-sized), built once per plan."""
        return cached(self._servers, id(plan),
                      lambda: self._client_for(plan).server_model(plan, name=which))

    @property
    def transform_server_(self):
        """ServerModel of the transform (encoder) plan, built on first use."""
        self._check_keys()
        return self._server("transform")

    def encrypt(self, X):
        """Client side: preprocess, encode and encrypt ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Raw input samples, as given to ``predict`` (the fitted
            preprocessor and the network's input encoding are applied here).

        Returns
        -------
        batch : EncryptedBatch
            Ciphertexts (``plan_.batch`` samples each); ``serialize()`` gives bytes.
        """
        self._check_keys()
        if self._simulated():
            raise RuntimeError("encrypt is not available in mode='simulate'")
        return self.client_.encrypt(self._client_input(X))

    def decrypt(self, result):
        """Client side: decrypt an evaluated batch to the raw network outputs.

        Parameters
        ----------
        result : EncryptedResult or bytes
            Output of ``server_.evaluate`` (or its ``serialize()`` bytes).

        Returns
        -------
        raw : ndarray of shape (n_samples, n_outputs)
            Outputs before the output head, in the network's original output
            order; codes for a ``transform_server_`` result.
        """
        self._check_keys()
        if isinstance(result, (bytes, bytearray, memoryview)):
            result = self.load_result(result)
        which = "transform" if result.tag == "transform" else "predict"
        raw = self.client_.decrypt(result, self._plan(which))
        if which == "transform":
            return raw
        return self.network_estimator_.network_.unpermute_outputs(raw)

    def load_result(self, data):
        """Load an :class:`EncryptedResult` from untrusted bytes with the client's context.

        Parameters
        ----------
        data : bytes
            Output of :meth:`EncryptedResult.serialize` as received from the
            server (untrusted: its index and ciphertext sizes are validated
            against the plan of its tag before anything is loaded).

        Returns
        -------
        result : EncryptedResult
            The result, loaded with the client's private context, for the
            predict plan or, if its tag is ``"transform"``, the transform plan.
        """
        self._check_keys()
        from .serialization import unpack

        tag = str(unpack(data, "EncryptedResult")[0].get("tag", ""))
        return self.client_.load_result(data, self._plan("transform" if tag == "transform"
                                                         else "predict"))


    def _plan_ids(self):
        ids = {"predict": plan_fingerprint(self.plan_)}
        if self.transform_plan_ is not None:
            ids["transform"] = plan_fingerprint(self.transform_plan_)
        return ids

    def save_client(self, path, *, password=None):
        """Write the client's keys (secret key included) to ``path``, mode 0600.

        The only way the secret key reaches a disk.  The file holds the
        private TenSEAL context (secret, public and relinearisation keys), the
        fingerprints of the packed plans (checked by :meth:`load_client`) and
        a format version.

        Parameters
        ----------
        path : str or path-like
            Destination (overwritten; created with owner-only permissions).
        password : str, optional
            Encrypt the file with this password (Fernet, scrypt key derivation).

        Returns
        -------
        path : str or path-like
            ``path``.
        """
        self._check_keys()
        if self._simulated():
            raise RuntimeError("simulate mode has no keys to save")
        return write_key_file(path, self.client_.save_context(), self._plan_ids(),
                              self.client_.key_id, password=password)

    def load_client(self, path, *, password=None):
        """Restore keys saved by :meth:`save_client` (e.g. on an unpickled predictor).

        Parameters
        ----------
        path : str or path-like
            A file written by :meth:`save_client`.
        password : str, optional
            The password it was saved with.

        Returns
        -------
        self : HEPredictor
            With ``client_`` and ``server_`` rebuilt from the saved keys: it
            decrypts results of ciphertexts encrypted before the save.

        Raises
        ------
        ValueError
            A file of another format version, for another model, or a wrong
            password.
        """
        from .client import Client

        check_is_fitted(self, "plan_")
        if self._simulated():
            raise RuntimeError("simulate mode uses no keys")
        extra = [self.transform_plan_] if self.transform_plan_ is not None else []
        client = Client.load(path, self.plan_, extra_plans=extra, password=password)
        self.client_ = client
        self.server_ = client.server_model(self.plan_, name="predict")
        self._servers, self._packages = {id(self.plan_): self.server_}, {}
        self._sized_plans, self._clients = {}, {}
        return self

    def save_server(self, path):
        """Write the public server package (no secret key) to ``path``.

        Read it with :meth:`skhepex.he.ServerModel.load`.

        Parameters
        ----------
        path : str or path-like
            Destination file (overwritten): the public context, Galois keys
            and packed model of ``server_``.

        Returns
        -------
        path : str or path-like
            ``path``.
        """
        self._check_keys()
        with open(path, "wb") as f:
            f.write(self.server_.serialize())
        return path

    def __getstate__(self):
        state = dict(self.__dict__)
        for key in ("client_", "server_", "_servers", "_packages", "_sized_plans", "_clients"):
            state.pop(key, None)
        for key in ("plan_", "transform_plan_"):
            if key in state:    # compact, pickle-free form of the plan (one tile per vector)
                plan = state.pop(key)
                state["_packed_" + key] = None if plan is None else plan_to_bytes(plan)
        return state

    def __setstate__(self, state):
        state = dict(state)
        for key in ("plan_", "transform_plan_"):
            if "_packed_" + key in state:
                data = state.pop("_packed_" + key)
                state[key] = None if data is None else plan_from_bytes(data)
        self.__dict__.update(state)
        if "plan_" in state:
            self._servers, self._packages, self._sized_plans, self._clients = {}, {}, {}, {}
            self.client_ = None
            self.server_ = None
