"""HEPredictor: encrypted CKKS inference of a fitted skhepex network.

The client (key owner) preprocesses, permutes and encrypts; the server
(:class:`~skhepex.he.engine.ServerModel`: public context, Galois/relin keys,
packed model) evaluates; the client decrypts, un-permutes and post-processes.
"""
from __future__ import annotations

import logging
import time
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier
from sklearn.metrics import accuracy_score, r2_score
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_is_fitted

from ..nn.losses import softmax
from .._tags import delegate_tags
from ..tiling import default_tile_shape, final_network, unwrap_network
from .engine import (Client, EncryptedResult, PlainSimulator,
                     _pack, _plan_from_payload, _plan_to_payload, _unpack, compile_stages,
                     required_depth)
from .params import check_security
from .report import HECostReport, build_stages, choose_tile_shape, resolve_params, unit_costs

__all__ = ["HEPredictor"]

logger = logging.getLogger("skhepex")


def _network_has(attr):
    def check(self):
        net = unwrap_network(self.estimator_ if hasattr(self, "estimator_") else self.estimator)
        if attr == "classes_":
            return is_classifier(net)
        return hasattr(net, attr)
    return check


def _stage_count_for_transform(net_est, n_stages):
    """Stages of the network's ``transform``: encoder for an autoencoder, else all but last."""
    if hasattr(net_est, "code_layer_"):
        return int(net_est.code_layer_) + 1
    return n_stages - 1


class HEPredictor(MetaEstimatorMixin, BaseEstimator):
    """Encrypted CKKS inference of a fitted network with tile tensors (TenSEAL/SEAL).

    Wraps a skhepex network, an ``HEPEx``, or a scikit-learn ``Pipeline`` whose
    last step is one of those (the preceding steps are client-side plaintext
    preprocessing).  ``fit`` packs the weights following the network's
    :class:`~skhepex.tiling.TileLayout` (all-zero tiles are neither stored nor
    multiplied), chooses 128-bit-secure CKKS parameters from the multiplicative
    depth and creates the keys -- only the Galois keys the network needs.
    ``predict`` and friends then run end to end on encrypted data:
    preprocessing -> input permutation -> encryption (samples batched into the
    free slots) -> server evaluation -> decryption -> output un-permutation ->
    post-processing.

    Parameters
    ----------
    estimator : estimator
        A skhepex network (``MLPClassifier``, ``MLPRegressor``, ``Autoencoder``,
        ``CNNClassifier``), an ``HEPEx``, or a ``Pipeline`` ending in one.  Its
        activations must be polynomials (``"square"`` or ``"poly"``).
    prefit : bool, default=False
        Use ``estimator`` as fitted (no cloning, no training); ``fit()`` then
        takes no data.
    tile_shape : (int, int) or "auto", default="auto"
        ``(t1, t2)``, powers of two.  ``"auto"``: the ``HEPEx``'s tile shape when
        there is one (pruning and packing must agree), else the shape with the
        lowest predicted latency per sample (see
        :func:`~skhepex.he.report.choose_tile_shape`).
    poly_modulus_degree : int or "auto", default="auto"
        Ring dimension N.
    coeff_mod_bit_sizes : tuple of int or "auto", default="auto"
        Coefficient-modulus primes, the special prime last.  Explicit values
        below 128-bit security (log2 Q > 109/218/438/881 for
        N = 4096/8192/16384/32768) or with too few levels are refused.
    scale_bits : int or "auto", default="auto"
        log2 of the encoding scale.
    security_level : int, default=128
        Only 128 is supported; anything else raises ``ValueError``.
    encrypt_weights : bool, default=False
        Encrypt weights and biases under the client's key (model confidentiality
        against the server): products become ciphertext x ciphertext.  The
        tile sparsity pattern, masks and activation coefficients stay visible.
    batch_size : int or "auto", default="auto"
        Samples sent per encrypt -> evaluate -> decrypt round trip in
        ``predict`` (``"auto"``: all samples at once, in full ciphertexts), and
        the request size the automatic tile shape is optimised for
        (``"auto"``: full ciphertexts, i.e. throughput).
    n_jobs : int or None, default=None
        Reserved: evaluation runs in one process (SEAL does not release the GIL,
        so threads would not help).  Validated; values other than ``None`` or
        ``1`` log a warning.
    mode : {"encrypted", "simulate"}, default="encrypted"
        ``"simulate"`` runs the same packing and op sequence on NumPy slot
        vectors (:class:`~skhepex.he.engine.PlainSimulator`): no keys, no
        encryption, exact up to float rounding.
    verbose : int, default=0
        Log progress (``logging``, logger ``"skhepex"``).

    Attributes
    ----------
    estimator_ : estimator
        The fitted estimator (``estimator`` itself when ``prefit=True``).
    network_estimator_ : estimator
        The fitted network inside it.
    preprocessor_ : Pipeline or None
        Client-side preprocessing (the Pipeline's steps before the network).
    tile_shape_ : (int, int)
    params_ : CKKSParams
    plan_ : CompiledPlan
        Packed network (client-side copy, plain weights).
    transform_plan_ : CompiledPlan or None
        Packed prefix for ``transform`` (autoencoder code / hidden layer).
    client_ : Client
        Key owner (secret key); ``None`` in simulate mode or after unpickling.
    server_ : ServerModel
        Public context + keys + packed model: what a server receives.
    report_ : HECostReport
        Op counts, memory and predicted latency; measured latency per layer
        and per sample after ``predict``.
    n_features_in_ : int

    Notes
    -----
    The automatic tile shape optimises throughput for full ciphertexts (with
    1x1 tiles a ciphertext carries N/2 samples); a request of a few samples
    then costs as much as a full batch. For small requests pass ``batch_size``
    (the expected request size) or an explicit ``tile_shape``. Decoding
    autoencoder codes (``inverse_transform``) is not offered under encryption;
    decode in plaintext with the network's own ``inverse_transform``.

    Pickling drops every secret: ``client_``, ``server_`` and the keys are not
    pickled (TenSEAL objects do not pickle, and a pickle carrying the secret key
    by accident would be a leak).  An unpickled predictor keeps the packed plan
    and the report; in ``"simulate"`` mode it works as is, in ``"encrypted"``
    mode call :meth:`rekey` to generate fresh keys (ciphertexts made under the
    old keys cannot be decrypted any more).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skhepex import MLPClassifier
    >>> from skhepex.he import HEPredictor
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=5).fit(X / 16, y)
    >>> he = HEPredictor(clf, prefit=True, tile_shape=(8, 8)).fit()
    >>> he.predict(X[:4] / 16).shape
    (4,)
    """

    _parameter_constraints = {
        "estimator": [object],
        "prefit": ["boolean"],
        "tile_shape": [StrOptions({"auto"}), tuple, list],
        "poly_modulus_degree": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "coeff_mod_bit_sizes": [StrOptions({"auto"}), tuple, list],
        "scale_bits": [StrOptions({"auto"}), Interval(Integral, 1, 60, closed="both")],
        "security_level": [Interval(Integral, 1, None, closed="left")],
        "encrypt_weights": ["boolean"],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "n_jobs": [None, Integral],
        "mode": [StrOptions({"encrypted", "simulate"})],
        "verbose": ["verbose"],
    }

    def __init__(self, estimator, *, prefit=False, tile_shape="auto",
                 poly_modulus_degree="auto", coeff_mod_bit_sizes="auto", scale_bits="auto",
                 security_level=128, encrypt_weights=False, batch_size="auto", n_jobs=None,
                 mode="encrypted", verbose=0):
        self.estimator = estimator
        self.prefit = prefit
        self.tile_shape = tile_shape
        self.poly_modulus_degree = poly_modulus_degree
        self.coeff_mod_bit_sizes = coeff_mod_bit_sizes
        self.scale_bits = scale_bits
        self.security_level = security_level
        self.encrypt_weights = encrypt_weights
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.mode = mode
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def _param_kw(self):
        return dict(poly_modulus_degree=self.poly_modulus_degree,
                    coeff_mod_bit_sizes=self.coeff_mod_bit_sizes,
                    scale_bits=self.scale_bits, security_level=self.security_level)

    def fit(self, X=None, y=None, **fit_params):
        """Fit the estimator (unless ``prefit``), pack it and create the keys.

        Parameters
        ----------
        X : array-like, default=None
            Training data (ignored with ``prefit=True``).
        y : array-like, default=None
            Targets.
        **fit_params : dict
            Passed to ``estimator.fit``.

        Returns
        -------
        self : HEPredictor

        Raises
        ------
        ValueError
            Insecure or insufficient CKKS parameters, a security level other
            than 128, or a non-polynomial activation (naming the layer).
        """
        self._validate_params()
        if self.security_level != 128:
            raise ValueError(f"security_level={self.security_level!r} is not supported: only "
                             f"128-bit security (HE standard bounds) is implemented")
        if self.poly_modulus_degree != "auto" and self.coeff_mod_bit_sizes != "auto":
            # refuse insecure explicit parameters before anything else uses them
            check_security(self.poly_modulus_degree, self.coeff_mod_bit_sizes)
        if self.n_jobs not in (None, 1):
            if self.n_jobs == 0:
                raise ValueError("n_jobs=0 is invalid; use None, 1 or a positive int")
            logger.warning("n_jobs=%s is reserved: HEPredictor evaluates in one process",
                           self.n_jobs)
        if self.prefit:
            est = self.estimator
        else:
            if X is None:
                raise ValueError("fit needs X (or pass prefit=True with a fitted estimator)")
            est = clone(self.estimator).fit(X, y, **fit_params)
        net_est = final_network(est)         # raises NotFittedError if unfitted
        self.estimator_ = est
        self.network_estimator_ = net_est
        self.preprocessor_ = (est[:-1] if isinstance(est, Pipeline) and len(est.steps) > 1
                              else None)
        self.n_features_in_ = (est.n_features_in_ if hasattr(est, "n_features_in_")
                               else net_est.network_.weight_layers[0].W.shape[0])
        t0 = time.perf_counter()
        self.tile_shape_ = self._resolve_tile_shape(est)
        stages = build_stages(est, self.tile_shape_)
        depth = required_depth(stages, self.tile_shape_)
        self.params_ = resolve_params(depth, self.tile_shape_, **self._param_kw())
        self.plan_ = compile_stages(stages, self.tile_shape_, self.params_,
                                    encrypt_weights=self.encrypt_weights)
        self.transform_plan_ = None
        if hasattr(net_est, "transform"):
            k = _stage_count_for_transform(net_est, len(stages))
            if k >= 1:
                self.transform_plan_ = compile_stages(stages[:k], self.tile_shape_,
                                                      self.params_,
                                                      encrypt_weights=self.encrypt_weights)
        self._setup_backend()
        self.report_ = HECostReport(self.plan_, unit_costs(self.params_))
        if self.verbose:
            logger.info("HEPredictor compiled in %.2f s: tile %s, N=%d, depth %d, %d weight "
                        "tiles packed", time.perf_counter() - t0, self.tile_shape_,
                        self.params_.poly_modulus_degree, self.plan_.depth,
                        self.report_.n_weight_ciphertexts)
        return self

    def _resolve_tile_shape(self, est):
        if not isinstance(self.tile_shape, str):
            ts = tuple(int(v) for v in self.tile_shape)
            if len(ts) != 2:
                raise ValueError(f"tile_shape must be (t1, t2); got {self.tile_shape!r}")
            hepex_ts = default_tile_shape(est)
            if hepex_ts is not None and tuple(hepex_ts) != ts:
                logger.warning("tile_shape %s differs from the HEPEx's %s: tiles emptied by "
                               "pruning may not be empty in this packing", ts, hepex_ts)
            return ts
        hepex_ts = default_tile_shape(est)
        if hepex_ts is not None:
            return tuple(int(v) for v in hepex_ts)
        ts, _ = choose_tile_shape(est, param_kw=self._param_kw(),
                                  encrypt_weights=self.encrypt_weights,
                                  batch_size=self.batch_size)
        return tuple(ts)

    def _setup_backend(self):
        self._servers = {}
        if self.mode == "simulate":
            self.client_ = None
            self.server_ = None
            self.simulator_ = PlainSimulator(self.plan_)
            return
        self.simulator_ = None
        extra = [self.transform_plan_] if self.transform_plan_ is not None else []
        self.client_ = Client(self.plan_, extra_plans=extra)
        self.server_ = self.client_.server_model(self.plan_, name="predict")
        self._servers["predict"] = self.server_

    def rekey(self):
        """Generate fresh keys and a new server model (e.g. after unpickling).

        Returns
        -------
        self : HEPredictor
        """
        check_is_fitted(self, "plan_")
        self._setup_backend()
        return self

    # --------------------------------------------------------------- client
    def _check_keys(self):
        check_is_fitted(self, "plan_")
        if self.mode == "encrypted" and getattr(self, "client_", None) is None:
            raise RuntimeError("this HEPredictor holds no keys (they are never pickled); call "
                               "rekey() to generate fresh ones")

    def _client_input(self, X):
        """Preprocess, flatten and permute X on the client (plaintext)."""
        if self.preprocessor_ is not None:
            X = self.preprocessor_.transform(X)
        net_est = self.network_estimator_
        if hasattr(net_est, "_flatten_input"):
            X = net_est._flatten_input(X)[0]
        X = check_array(X, dtype=np.float64)
        if X.shape[1] != self.plan_.n_features:
            raise ValueError(f"X has {X.shape[1]} features after preprocessing; the network "
                             f"expects {self.plan_.n_features}")
        perm = net_est.network_.input_perm
        return X[:, perm] if perm is not None else X

    def _plan(self, which):
        if which == "transform":
            if self.transform_plan_ is None:
                raise AttributeError("this network has no transform")
            return self.transform_plan_
        return self.plan_

    def _server(self, which):
        if which not in self._servers:
            self._servers[which] = self.client_.server_model(self._plan(which), name=which)
        return self._servers[which]

    @property
    def transform_server_(self):
        """ServerModel of the transform (encoder) plan, built on first use."""
        self._check_keys()
        return self._server("transform")

    def encrypt(self, X):
        """Client side: preprocess, permute and encrypt ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        EncryptedBatch
            Ciphertexts (``plan_.batch`` samples each); ``serialize()`` gives bytes.
        """
        self._check_keys()
        if self.mode == "simulate":
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
            Outputs before softmax/argmax, in the network's original output
            order (the output permutation is undone); codes for a
            ``transform_server_`` result.
        """
        self._check_keys()
        if isinstance(result, (bytes, bytearray)):
            result = self.load_result(result)
        which = "transform" if result.tag == "transform" else "predict"
        raw = self.client_.decrypt(result, self._plan(which))
        return self._unpermute(raw, which)

    def load_result(self, data):
        """Load an :class:`EncryptedResult` from bytes with the client's context."""
        self._check_keys()
        return EncryptedResult.load(data, self.client_.context)

    def _unpermute(self, raw, which):
        perm = self.network_estimator_.network_.output_perm
        if which == "predict" and perm is not None:
            raw = raw[:, np.argsort(perm)]
        return raw

    def _raw(self, X, which="predict"):
        self._check_keys()
        Xc = self._client_input(X)
        plan = self._plan(which)
        if self.mode == "simulate":
            return self._unpermute(PlainSimulator(plan).predict(Xc) if which != "predict"
                                   else self.simulator_.predict(Xc), which)
        server = self._server(which)
        step = Xc.shape[0] if self.batch_size == "auto" else int(self.batch_size)
        step = max(step, 1)
        outs, t_enc, t_dec, n_batches = [], 0.0, 0.0, 0
        seconds = np.zeros(len(plan.stages))
        for start in range(0, Xc.shape[0], step):
            t0 = time.perf_counter()
            enc = self.client_.encrypt(Xc[start:start + step])
            t_enc += time.perf_counter() - t0
            res = server.evaluate(enc)
            seconds += [t["seconds"] for t in server.timings_]
            n_batches += len(enc.batches)
            t0 = time.perf_counter()
            outs.append(self.client_.decrypt(res, plan))
            t_dec += time.perf_counter() - t0
            if self.verbose:
                logger.info("evaluated %d/%d samples", min(start + step, Xc.shape[0]),
                            Xc.shape[0])
        if which == "predict":
            timings = [dict(stage=st.name, seconds=float(s))
                       for st, s in zip(plan.stages, seconds)]
            self.report_.record_run(timings, Xc.shape[0], n_batches, t_enc, t_dec)
        raw = np.vstack(outs) if outs else np.zeros((0, plan.n_outputs))
        return self._unpermute(raw, which)

    # ------------------------------------------------------------ estimator
    def predict(self, X):
        """Predict on encrypted data (or simulated packing in ``mode="simulate"``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray
            Class labels (classifiers), targets (regressors) or reconstructions
            (autoencoders), as the plaintext estimator returns them.
        """
        raw = self._raw(X)
        net = self.network_estimator_
        if is_classifier(net):
            return net.classes_[np.argmax(raw, axis=1)]
        if hasattr(net, "_postprocess"):
            return net._postprocess(raw)
        return raw

    @available_if(_network_has("classes_"))
    def predict_proba(self, X):
        """Class probabilities: softmax of the decrypted logits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        return softmax(self._raw(X))

    @available_if(_network_has("classes_"))
    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba` (encrypted end to end).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log class probabilities.
        """
        return np.log(np.clip(self.predict_proba(X), 1e-300, None))

    @available_if(_network_has("classes_"))
    def decision_function(self, X):
        """Decrypted logits (their difference for two classes).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
        """
        return self.network_estimator_._postprocess_decision(self._raw(X))

    @available_if(_network_has("transform"))
    def transform(self, X):
        """Encrypted ``transform``: the autoencoder's code (or the last hidden layer).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
        """
        return self._raw(X, "transform")

    def score(self, X, y=None, sample_weight=None):
        """Score of the encrypted predictions.

        Accuracy for classifiers, R² for regressors, variance-weighted R² of the
        reconstruction for autoencoders (target: the preprocessed ``X`` when
        ``y`` is None), as the plaintext estimators compute it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like, default=None
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        net = self.network_estimator_
        pred = self.predict(X)
        if is_classifier(net):
            return accuracy_score(y, pred, sample_weight=sample_weight)
        if hasattr(net, "code_layer_"):
            if y is None or np.asarray(y).ndim == 1:
                y = self.preprocessor_.transform(X) if self.preprocessor_ is not None else X
            return r2_score(np.asarray(y, dtype=np.float64), pred,
                            sample_weight=sample_weight, multioutput="variance_weighted")
        return r2_score(y, pred, sample_weight=sample_weight)

    @property
    def classes_(self):
        """ndarray : Class labels of the network (classifiers)."""
        return self.network_estimator_.classes_

    def __sklearn_tags__(self):
        return delegate_tags(super().__sklearn_tags__(), self.estimator)

    # ------------------------------------------------------------- pickling
    def __getstate__(self):
        state = dict(self.__dict__)
        for key in ("client_", "server_", "_servers", "simulator_"):
            state.pop(key, None)
        for key in ("plan_", "transform_plan_"):
            if key in state:    # compact, pickle-free form of the plan (one tile per vector)
                plan = state.pop(key)
                state["_packed_" + key] = (None if plan is None
                                           else _pack("CompiledPlan", *_plan_to_payload(plan)))
        return state

    def __setstate__(self, state):
        state = dict(state)
        for key in ("plan_", "transform_plan_"):
            if "_packed_" + key in state:
                data = state.pop("_packed_" + key)
                state[key] = None if data is None else _plan_from_payload(
                    *_unpack(data, "CompiledPlan"))
        self.__dict__.update(state)
        if "plan_" in state:
            self._servers = {}
            self.client_ = None
            self.server_ = None
            self.simulator_ = PlainSimulator(self.plan_) if self.mode == "simulate" else None

