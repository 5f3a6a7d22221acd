"""The HE-PEx meta-estimator: dense training followed by pruning steps."""

import logging
import time

from sklearn.base import clone
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.metaestimators import _BaseComposition, available_if
from sklearn.utils.validation import check_is_fitted, check_memory

from .._tags import delegate_tags
from ..estimators import check_network
from ..tiling import TileLayout, check_tile_shape
from ._base import weight_sparsity

__all__ = ["HEPEx"]

logger = logging.getLogger("skhepex")

#: Number of dense trainings actually run (cache misses) in this process.
#: Tests read it to check that ``memory`` avoids retraining.
N_DENSE_FITS = 0


def _record(name, est, X, y, tile_shape):
    layout = TileLayout(est, tile_shape)
    try:
        score = float(est.score(X, y))
    except Exception:  # pragma: no cover - scoring is informative only
        score = float("nan")
    return {"name": name, "sparsity": weight_sparsity(est),
            "n_nonzero_tiles": layout.n_nonzero_tiles, "n_tiles": layout.n_tiles,
            "train_score": score}


def _fit_dense(estimator, X, y, tile_shape):
    """Train ``estimator`` densely (cached by ``HEPEx.memory``)."""
    global N_DENSE_FITS
    N_DENSE_FITS += 1
    estimator.fit(X, y)
    return estimator, _record("dense", estimator, X, y, tile_shape)


def _apply_step(network, step, name, X, y, tile_shape):
    """Apply one pruning step (cached by ``HEPEx.memory``, keyed on the prefix)."""
    out = step.prune(network, X, y, tile_shape=tile_shape)
    return out, step, _record(name, out, X, y, tile_shape)


def _is_passthrough(step):
    return step is None or (isinstance(step, str) and step == "passthrough")


def _estimator_has(attr):
    def check(self):
        return hasattr(self.__skhepex_network__(), attr)
    return check


def _delegate(method, summary, x_doc, returns):
    """An ``HEPEx`` method returning ``estimator_.<method>(X)``.

    Available only when the wrapped network has ``method``; the docstring is
    ``summary``, then ``X`` (described by ``x_doc``) and ``returns``.
    """
    def delegated(self, X):
        check_is_fitted(self)
        return getattr(self.estimator_, method)(X)

    delegated.__name__ = method
    delegated.__qualname__ = f"HEPEx.{method}"
    delegated.__doc__ = (f"{summary}\n\nParameters\n----------\nX : {x_doc}\n\n"
                         f"Returns\n-------\n{returns}\n")
    return available_if(_estimator_has(method))(delegated)


_SAMPLES = "array-like of shape (n_samples, n_features)\n    Input data."


class HEPEx(_BaseComposition):
    """Train a network densely, then prune it for HE with a chain of steps.

    HE-PEx (Aharoni et al., ESORICS 2023): under homomorphic encryption a
    weight tile costs one ciphertext multiply whether it holds one non-zero
    weight or all of them, so pruning pays only when whole tiles become empty.
    ``HEPEx`` trains a clone of ``estimator`` and applies ``steps`` in order
    (typically :class:`MagnitudePruner`, :class:`Permuter`,
    :class:`TilePruner`, :class:`Expander`), each receiving the previous
    fitted network, the training data and ``tile_shape``. Like a
    :class:`~sklearn.pipeline.Pipeline` it is flat: any step may be
    ``"passthrough"`` and step parameters are reachable as
    ``<name>__<param>``, so the paper's variants form one grid.

    Parameters
    ----------
    estimator : estimator
        An unfitted skhepex network (``MLPClassifier``, ``MLPRegressor``,
        ``Autoencoder``, ``CNNClassifier``); a clone is trained.
    steps : list of (str, step) tuples
        Named pruning steps, each an object with a ``prune(estimator, X, y,
        tile_shape)`` method, or ``"passthrough"`` / ``None`` to skip it.
    tile_shape : tuple of int (t1, t2), default=(8, 8)
        Tile shape of the HE packing, given to every step (and read by
        :func:`~skhepex.tile_report` and the HE predictor).
    memory : str, joblib.Memory or None, default=None
        Cache for the dense training and for every prefix of steps, keyed on
        the estimator's parameters, the steps' parameters, the tile shape and
        the data. A grid search over a later step then never retrains the
        dense network nor re-runs earlier steps.
    verbose : int, default=0
        Log the time of every stage (at INFO level, on the ``"skhepex"``
        logger of :mod:`logging`; nothing is printed).

    Attributes
    ----------
    estimator_ : estimator
        The final pruned network.
    dense_estimator_ : estimator
        The densely trained network.
    steps_ : list of (str, step)
        Fitted copies of the steps (``steps`` is never mutated).
    n_ciphertexts_ : int
        Non-zero weight tiles of the final network (weight ciphertexts).
    n_ciphertexts_dense_ : int
        Non-zero weight tiles of the dense network.
    history_ : list of dict
        One record per stage ("dense" first, then every applied step), with
        keys ``name``, ``sparsity`` (weight sparsity), ``n_nonzero_tiles``,
        ``n_tiles`` and ``train_score``.
    classes_ : ndarray
        Class labels (classifiers).
    n_features_in_ : int
        Number of input features.

    See Also
    --------
    fewest_ciphertexts_within : Refit rule for GridSearchCV.
    ciphertext_scorer : Scorer counting ciphertexts.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skhepex import MLPClassifier, HEPEx, MagnitudePruner, TilePruner
    >>> X, y = load_digits(return_X_y=True)
    >>> hepex = HEPEx(MLPClassifier(hidden_layer_sizes=(32,), max_iter=20, random_state=0),
    ...               steps=[("prune", MagnitudePruner(fine_tune_iter=2)),
    ...                      ("tiles", TilePruner(fine_tune_iter=2))],
    ...               tile_shape=(8, 8)).fit(X / 16, y)
    >>> hepex.n_ciphertexts_ < hepex.n_ciphertexts_dense_
    True
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit"])],
        "steps": [list],
        "tile_shape": [tuple, list],
        "memory": [None, str, HasMethods(["cache"])],
        "verbose": ["verbose"],
    }

    def __init__(self, estimator, steps, *, tile_shape=(8, 8), memory=None, verbose=0):
        self.estimator = estimator
        self.steps = steps
        self.tile_shape = tile_shape
        self.memory = memory
        self.verbose = verbose

    # ------------------------------------------------------------- params
    def get_params(self, deep=True):
        """Get parameters, including ``<step>__<param>`` when ``deep``.

        Parameters
        ----------
        deep : bool, default=True
            Include the parameters of the estimator and of the steps.

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        return self._get_params("steps", deep=deep)

    def set_params(self, **params):
        """Set parameters; steps can be replaced by name or ``"passthrough"``.

        Parameters
        ----------
        **params : dict
            ``steps``, ``<step name>``, ``<step name>__<param>``,
            ``estimator__<param>`` or any other parameter.

        Returns
        -------
        self : HEPEx
            This instance.
        """
        self._set_params("steps", **params)
        return self

    def _validate_steps(self):
        if not all(isinstance(s, tuple) and len(s) == 2 for s in self.steps):
            raise TypeError("steps must be a list of (name, step) tuples.")
        names = [name for name, _ in self.steps]
        self._validate_names(names)
        for name, step in self.steps:
            if not _is_passthrough(step) and not hasattr(step, "prune"):
                raise TypeError(
                    f"Step {name!r} must have a prune(estimator, X, y, tile_shape) method "
                    f"or be 'passthrough'; got {step!r}.")

    def _log(self, msg, t0):
        if self.verbose:
            logger.info("[HEPEx] %s ... %.1fs", msg, time.time() - t0)

    # ----------------------------------------------------- wrapper protocol
    def __skhepex_network__(self):
        """The wrapped network (see :func:`~skhepex.estimators.get_network`).

        Returns
        -------
        estimator : estimator
            The pruned network ``estimator_`` once fitted, else the unfitted
            ``estimator``.
        """
        return self.estimator_ if hasattr(self, "estimator_") else self.estimator

    def __skhepex_tile_shape__(self):
        """The tile shape the steps prune for (see :func:`~skhepex.estimators.get_tile_shape`).

        Returns
        -------
        tile_shape : tuple of int (t1, t2)
            ``tile_shape``, validated.
        """
        return check_tile_shape(self.tile_shape)

    # ---------------------------------------------------------------- fit
    def fit(self, X, y=None):
        """Train the network densely, then apply the pruning steps.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (4-D images for a CNN are accepted).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), default=None
            Targets (``None`` for an autoencoder).

        Returns
        -------
        self : HEPEx
            Fitted meta-estimator.
        """
        self._validate_params()
        self._validate_steps()
        tile_shape = check_tile_shape(self.tile_shape)
        check_network(self.estimator, fitted=False)  # before any training
        memory = check_memory(self.memory)
        fit_dense = memory.cache(_fit_dense)
        apply_step = memory.cache(_apply_step)
        t0 = time.time()
        net, rec = fit_dense(clone(self.estimator), X, y, tile_shape)
        check_network(net)
        self._log("dense training", t0)
        self.dense_estimator_ = net
        history = [rec]
        steps_ = []
        for name, step in self.steps:
            if _is_passthrough(step):
                steps_.append((name, step))
                continue
            t0 = time.time()
            net, fitted, rec = apply_step(net, clone(step), name, X, y, tile_shape)
            self._log(f"step {name!r}", t0)
            steps_.append((name, fitted))
            history.append(rec)
        self.estimator_ = net
        self.steps_ = steps_
        self.history_ = history
        self.n_ciphertexts_dense_ = history[0]["n_nonzero_tiles"]
        self.n_ciphertexts_ = history[-1]["n_nonzero_tiles"]
        return self

    # ---------------------------------------------------------- delegation
    predict = _delegate(
        "predict", "Predict with the pruned network.", _SAMPLES,
        "y_pred : ndarray\n    The pruned network's predictions.")
    predict_proba = _delegate(
        "predict_proba", "Class probabilities of the pruned network.", _SAMPLES,
        "proba : ndarray of shape (n_samples, n_classes)\n    Class probabilities.")
    predict_log_proba = _delegate(
        "predict_log_proba", "Log class probabilities of the pruned network.", _SAMPLES,
        "log_proba : ndarray of shape (n_samples, n_classes)\n    Log class probabilities.")
    decision_function = _delegate(
        "decision_function", "Raw outputs of the pruned network.", _SAMPLES,
        "scores : ndarray\n    Network outputs.")
    transform = _delegate(
        "transform", "Hidden/code representation of the pruned network.", _SAMPLES,
        "Xt : ndarray\n    The network's ``transform`` output.")
    inverse_transform = _delegate(
        "inverse_transform", "Decode with the pruned network (autoencoders).",
        "array-like of shape (n_samples, n_code)\n    Codes.",
        "X_rec : ndarray\n    Reconstructions.")

    @available_if(_estimator_has("transform"))
    def fit_transform(self, X, y=None):
        """Fit, then transform ``X`` with the pruned network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like, default=None
            Targets.

        Returns
        -------
        Xt : ndarray
            ``self.fit(X, y).transform(X)``.
        """
        return self.fit(X, y).transform(X)

    @available_if(_estimator_has("score"))
    def score(self, X, y=None, sample_weight=None):
        """Score of the pruned network (accuracy, R², reconstruction R²).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.
        y : array-like, default=None
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            The network's ``score``.
        """
        check_is_fitted(self)
        if sample_weight is None:
            return self.estimator_.score(X, y)
        return self.estimator_.score(X, y, sample_weight=sample_weight)

    @property
    def classes_(self):
        """ndarray : Class labels of the network."""
        return self.estimator_.classes_

    @property
    def n_features_in_(self):
        """int : Number of input features."""
        return self.estimator_.n_features_in_

    def __sklearn_tags__(self):
        return delegate_tags(super().__sklearn_tags__(), self.estimator)
