"""HEPredictor: encrypted CKKS inference of a fitted skhepex network (orchestration).

The client (key owner) preprocesses and encodes (:meth:`NetworkMixin.encode_input`)
and encrypts; the server (:class:`~skhepex.he.server.ServerModel`: public
context, Galois/relin keys, packed model) evaluates; the client decrypts and
applies the network's output head (:meth:`NetworkMixin.output_head`).
"""
from __future__ import annotations

import copy
import logging
import time
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier, is_regressor
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if

from ..estimators import delegate_tags
from ..estimators import get_network, get_tile_shape
from ..tiling import check_tile_shape
from .build import compile_packing
from .costs import unit_costs
from .guard import declared_input_range
from .key_owner import KeyOwnerMixin
from .params import check_security
from .requests import RequestMixin
from .planner import resolve_tile_shape
from .report import HECostReport
from .stages import build_stages
from .wrapping import split_estimator

__all__ = ["HEPredictor"]

logger = logging.getLogger("skhepex")


def _network_has(method):
    def check(self):
        est = self.estimator_ if hasattr(self, "estimator_") else self.estimator
        try:
            net = get_network(est, fitted=False)
        except TypeError:            # e.g. a TransformedTargetRegressor: ask it directly
            net = est
        if method == "classes_":
            return is_classifier(net)
        return hasattr(net, method)
    return check


class HEPredictor(RequestMixin, KeyOwnerMixin, MetaEstimatorMixin, BaseEstimator):
    """Encrypted CKKS inference of a fitted network with tile tensors (TenSEAL/SEAL).

    Wraps a skhepex network, an ``HEPEx``, or a scikit-learn ``Pipeline`` whose
    last step is one of those (the preceding steps are client-side plaintext
    preprocessing).  ``fit`` packs the weights following the network's
    :class:`~skhepex.tiling.TileLayout` (all-zero tiles are neither stored nor
    multiplied), chooses 128-bit-secure CKKS parameters from the multiplicative
    depth and creates the keys -- only the Galois keys the network needs.
    ``predict`` and friends then run end to end on encrypted data:
    preprocessing -> input encoding -> encryption (samples batched into the
    free slots) -> server evaluation -> decryption -> output head, streamed
    one round trip at a time (memory is bounded by one round trip, not by the
    number of samples).

    Parameters
    ----------
    estimator : estimator
        A skhepex network (``MLPClassifier``, ``MLPRegressor``, ``Autoencoder``,
        ``CNNClassifier``), an ``HEPEx``, or a ``Pipeline`` ending in one.  Its
        activations must be polynomials (``"square"`` or ``"poly"``).
    prefit : bool, default=False
        Use a copy of the fitted ``estimator`` (no training); ``fit()`` then
        takes no data.  A :class:`sklearn.frozen.FrozenEstimator` is accepted.
    tile_shape : (int, int) or "auto", default="auto"
        ``(t1, t2)``, powers of two.  ``"auto"``: the ``HEPEx``'s tile shape when
        there is one (pruning and packing must agree), else the shape with the
        lowest predicted latency per sample (see
        :func:`~skhepex.he.planner.choose_tile_shape`), priced with tabulated
        SEAL unit costs so that the same model gets the same packing on every
        run (``report_`` then prices the chosen packing with unit costs
        measured on this machine).
    poly_modulus_degree : int or "auto", default="auto"
        Ring dimension N.
    coeff_mod_bit_sizes : tuple of int or "auto", default="auto"
        Coefficient-modulus primes, the special prime last.  Explicit values
        below 128-bit security (log2 Q > 109/218/438/881 for
        N = 4096/8192/16384/32768) or with too few levels are refused.
    scale_bits : int or "auto", default="auto"
        The log2 of the encoding scale.
    security_level : int, default=128
        Only 128 is supported; anything else raises ``ValueError``.
    encrypt_weights : bool, default=False
        Encrypt weights and biases under the client's key (model confidentiality
        against the server): products become ciphertext x ciphertext.  The
        tile sparsity pattern, masks and activation coefficients stay visible.
    batch_size : int or "auto", default="auto"
        ``"auto"``: with ``tile_shape="auto"``, every request runs on a
        packing sized to it: the fitted plan (``plan_``, full ciphertexts,
        i.e. throughput) for large requests, and for a smaller one the
        packing the cost model prefers for its request-size class (the power
        of two at or above its size), compiled on first use, with the fitted
        parameters and keys or, when it is predicted much faster, parameters
        and keys of its own (kept in this process only); a model pruned for
        a tile shape is packed with that shape at fit and sized the same way
        for every request (see :mod:`skhepex.he.requests`).  Round trips
        are one ciphertext batch; the tail of a large request goes on the
        packing sized to the tail.
        An int ``B``: the automatic tile shape is optimised for ``B``
        samples per request, and ``B`` samples are sent per round trip.
    n_jobs : int or None, default=None
        Worker processes evaluating ciphertext batches (joblib; ``-1``: every
        core; ``None``: 1 unless a ``joblib.parallel_config`` context says
        otherwise, e.g. ``backend="dask"`` for a dask.distributed cluster).
        SEAL holds the GIL, so only processes speed it up.  Each worker
        receives the public server package once; only ciphertexts travel per
        batch, never a key that can decrypt.
    mode : {"encrypted", "simulate"}, default="encrypted"
        ``"simulate"`` runs the same packing and op sequence on NumPy slot
        vectors (:class:`~skhepex.he.simulator.PlainSimulator`): no keys, no
        encryption, no SEAL timing (tabulated unit costs), exact up to float
        rounding.
    input_range : "auto", None or (lo, hi), default="auto"
        The box the (preprocessed) inputs live in: CKKS parameters are chosen
        so that the largest value the network can reach on it decrypts
        without wrapping around (:mod:`skhepex.he.bounds`), as far as the
        ring the depth needs allows.  ``"auto"``: the network's training box
        (``input_range_``) widened by 5% of its widest side (a clipping
        ``MinMaxScaler``'s range when the pipeline ends with one).  Requests
        whose value bound exceeds the decryptable range are refused, and
        decrypted values above their bound raise
        :class:`~skhepex.he.bounds.PrecisionError`: never a wrapped value.
        ``None`` declares no box (default headroom; the checks still apply).
    max_memory : int or "auto", default="auto"
        Byte budget of a packed model + keys for the automatic tile shape
        (larger tiles for small requests and more samples per ciphertext for
        large ones need more plaintexts); ``"auto"``: a quarter of the
        physical memory, at most 8 GiB (:func:`~skhepex.he.planner.memory_budget`).
    verbose : int, default=0
        Log progress (``logging``, logger ``"skhepex"``).

    Attributes
    ----------
    estimator_ : estimator
        The fitted estimator (a deep copy of ``estimator`` when ``prefit=True``).
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
    client_ : Client or None
        Key owner (secret key); ``None`` in simulate mode or after unpickling.
    server_ : ServerModel or None
        Public context + keys + packed model: what a server receives.
    report_ : HECostReport
        Op counts, memory and predicted latency (see :meth:`measure` for
        measured latency).
    input_range_ : (ndarray, ndarray) or None
        The declared input box, in the network's encoded input order.
    guard_ : RangeGuard
        Per-request bound checks (decryptable range ``guard_.limit``).
    n_features_in_ : int

    Notes
    -----
    Pickling drops every secret: ``client_``, ``server_`` and the keys are not
    pickled.  An unpickled predictor keeps the packed plan and the report; in
    ``"simulate"`` mode it works as is; in ``"encrypted"`` mode restore the
    keys saved with :meth:`save_client` (:meth:`load_client`), or call
    :meth:`rekey` to generate fresh ones.

    A parameter changed with ``set_params`` after ``fit`` takes effect at the
    next ``fit``: ``predict`` and the other methods use the values ``fit``
    saw (a request-sized packing compiled later too), except ``n_jobs`` and
    ``verbose``, which apply at once.

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
        "input_range": [StrOptions({"auto"}), None, tuple, list],
        "max_memory": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
    }

    def __init__(self, estimator, *, prefit=False, tile_shape="auto",
                 poly_modulus_degree="auto", coeff_mod_bit_sizes="auto", scale_bits="auto",
                 security_level=128, encrypt_weights=False, batch_size="auto", n_jobs=None,
                 mode="encrypted", input_range="auto", max_memory="auto", verbose=0):
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
        self.input_range = input_range
        self.max_memory = max_memory
        self.verbose = verbose

    # -------------------------------------------------------------- protocol
    def __skhepex_network__(self):
        """The wrapped estimator (fitted copy after ``fit``); see ``skhepex.estimators``."""
        if hasattr(self, "_parts"):
            return self._parts.holder
        return self.estimator

    def __skhepex_tile_shape__(self):
        """The tile shape the predictor packs with (fitted), or will use (explicit)."""
        if hasattr(self, "tile_shape_"):
            return self.tile_shape_
        if not isinstance(self.tile_shape, str):
            return check_tile_shape(self.tile_shape)
        return get_tile_shape(self.estimator)

    # ------------------------------------------------------------------ fit

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
            Fitted predictor.

        Raises
        ------
        ValueError
            Insecure or insufficient CKKS parameters, a security level other
            than 128, or a non-polynomial activation (naming the layer).
        """
        self._validate_params()
        self._fit_params = {k: v for k, v in self.get_params(deep=False).items()
                            if k not in ("estimator", "n_jobs", "verbose")}
        if self.security_level != 128:
            raise ValueError(f"security_level={self.security_level!r} is not supported: only "
                             f"128-bit security (HE standard bounds) is implemented")
        if self.poly_modulus_degree != "auto" and self.coeff_mod_bit_sizes != "auto":
            check_security(self.poly_modulus_degree, self.coeff_mod_bit_sizes)
        if self.n_jobs == 0:
            raise ValueError("n_jobs=0 is invalid; use None, a positive int or -1")
        if self.prefit:
            est = getattr(self.estimator, "estimator", None) \
                if type(self.estimator).__name__ == "FrozenEstimator" else self.estimator
            est = copy.deepcopy(est)
        else:
            if X is None:
                raise ValueError("fit needs X (or pass prefit=True with a fitted estimator)")
            est = clone(self.estimator).fit(X, y, **fit_params)
        parts = split_estimator(est)         # TypeError / NotFittedError
        net = parts.network
        self.estimator_ = est
        self.network_estimator_ = net
        self.preprocessor_ = parts.preprocessor
        self._parts = parts
        self.n_features_in_ = getattr(est, "n_features_in_", None) or net.n_features_in_
        t0 = time.perf_counter()
        self.input_range_ = declared_input_range(self.input_range, net, self.preprocessor_)
        self.tile_shape_ = resolve_tile_shape(parts.holder, self.tile_shape,
                                              param_kw=self._param_kw(),
                                              encrypt_weights=self.encrypt_weights,
                                              batch_size=self.batch_size,
                                              measure=False,   # tabulated: reproducible
                                              input_range=self.input_range_,
                                              max_memory=self.max_memory)
        stages = build_stages(parts.holder, self.tile_shape_)
        k = net.n_transform_stages_
        self.params_, plans, self.guard_ = compile_packing(
            {"predict": stages, **({"transform": stages[:k]} if k else {})}, self.tile_shape_,
            self._param_kw(), self.input_range_, self.encrypt_weights)
        self.plan_ = plans["predict"]
        self.transform_plan_ = plans.get("transform")
        self._setup_backend()
        simulate = self._simulated()
        costs = (unit_costs(self.params_, measure=False) if simulate else
                 unit_costs(self.params_, client=self.client_))   # timed with its own keys
        self.report_ = HECostReport(self.plan_, costs, "tabulated" if simulate else "measured")
        if self.verbose:
            logger.info("HEPredictor compiled in %.2f s: tile %s, N=%d, depth %d, %d weight "
                        "tiles packed", time.perf_counter() - t0, self.tile_shape_,
                        self.params_.poly_modulus_degree, self.plan_.depth,
                        self.report_.n_weight_ciphertexts)
        return self

    # ------------------------------------------------------------ estimator
    def predict(self, X):
        """Predict on encrypted data (or simulated packing in ``mode="simulate"``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to predict, encrypted one round trip at a time.

        Returns
        -------
        y_pred : ndarray
            Class labels (classifiers), targets (regressors) or reconstructions
            (autoencoders), as the plaintext estimator returns them.
        """
        return self._parts.inverse_target(
            self._streamed(X, "predict"))

    @available_if(_network_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities: softmax of the decrypted logits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to classify under encryption.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Softmax of the decrypted logits (rows sum to one).
        """
        return self._streamed(X, "predict_proba")

    @available_if(_network_has("predict_log_proba"))
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
        return self._streamed(X, "predict_log_proba")

    @available_if(_network_has("decision_function"))
    def decision_function(self, X):
        """Decrypted logits (their difference for two classes).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples whose logits are computed under encryption.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            Decrypted logits, or ``logit[1] - logit[0]`` for two classes.
        """
        return self._streamed(X, "decision_function")

    @available_if(_network_has("transform"))
    def transform(self, X):
        """Encrypted ``transform``: the autoencoder's code (or the last hidden layer).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to represent under encryption.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            The decrypted representation.
        """
        return self._streamed(X, "transform")

    def score(self, X, y=None, sample_weight=None):
        """Score of the encrypted predictions.

        Accuracy for classifiers, R² for regressors, variance-weighted R² of the
        reconstruction for autoencoders (target: the preprocessed ``X`` when
        ``y`` is None), as the plaintext estimators compute it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples whose encrypted predictions are scored.
        y : array-like, default=None
            True labels, targets, or clean reconstructions (autoencoders).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            Accuracy, R² or variance-weighted reconstruction R².
        """
        net = self.network_estimator_
        pred = self.predict(X)
        if is_classifier(net):
            return accuracy_score(y, pred, sample_weight=sample_weight)
        if is_regressor(net):
            return r2_score(y, pred, sample_weight=sample_weight)
        if y is None or np.asarray(y).ndim == 1:
            y = self.preprocessor_.transform(X) if self.preprocessor_ is not None else X
        return r2_score(np.asarray(y, dtype=np.float64), pred, sample_weight=sample_weight,
                        multioutput="variance_weighted")

    @property
    def classes_(self):
        """ndarray : Class labels of the network (classifiers)."""
        return self.network_estimator_.classes_

    def __sklearn_tags__(self):
        return delegate_tags(super().__sklearn_tags__(), self.estimator)
