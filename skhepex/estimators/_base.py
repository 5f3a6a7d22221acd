"""Training loop and common behaviour of every skhepex network estimator (and the MLP mixin)."""

import logging
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import TransformerTags, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from ..nn.activations import ACTIVATIONS, Activation
from ..nn.layers import Dense
from ..nn.network import Network
from ..nn.optimizers import make_optimizer
from .contract import NetworkMixin

logger = logging.getLogger("skhepex")

#: Global gradient-norm clip applied at every update; keeps training with
#: square activations stable (their gradients grow with the activations).
MAX_GRAD_NORM = 10.0

#: ``batch_size="auto"`` is ``min(200, ceil(n_samples / MIN_STEPS_PER_EPOCH))``:
#: scikit-learn's ``min(200, n_samples)`` makes one update per epoch on data
#: sets under 200 samples, too few for the polynomial networks to train in the
#: usual epoch budgets (measured: wine 5-fold accuracy 0.973 -> 0.979 and
#: ``check_regressors_train`` at 20 epochs R^2 0.68 -> 0.86 with 4 updates).
MIN_STEPS_PER_EPOCH = 4


def shared_params(init_locals):
    """The shared hyper-parameters among the ``locals()`` of a subclass ``__init__``.

    Parameters
    ----------
    init_locals : dict
        ``locals()`` of an ``__init__`` whose signature includes every
        parameter of :class:`BaseNetwork`.

    Returns
    -------
    params : dict
        The keyword arguments of ``BaseNetwork.__init__``.
    """
    return {name: init_locals[name] for name in BaseNetwork._parameter_constraints}


class BaseNetwork(NetworkMixin, BaseEstimator):
    """Base class of the NumPy network estimators (not for direct use).

    Implements the training loop and the shared parts of the network contract
    (:class:`~skhepex.estimators.NetworkMixin`), and stores the
    hyper-parameters every network shares (documented by each estimator).
    Subclasses define ``_build_network(X, T, rng)``, ``_target_matrix``,
    ``_loss``, ``_head`` and ``fit``. Fitted networks expose ``coefs_``,
    ``intercepts_`` and ``masks_`` (lists over weight layers) as views on
    ``network_``. A subclass changing a default passes its shared
    parameters on with ``super().__init__(**shared_params(locals()))``.
    """

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like"],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "poly_coefs": [None, "array-like"],
        "poly_trainable": ["boolean"],
        "solver": [StrOptions({"adam", "sgd"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="square", *, poly_coefs=None,
                 poly_trainable=False, solver="adam", alpha=1e-4, batch_size="auto",
                 learning_rate_init=5e-3, max_iter=200, tol=1e-4, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, random_state=None,
                 verbose=False, warm_start=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.poly_coefs = poly_coefs
        self.poly_trainable = poly_trainable
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    # ------------------------------------------------------------ fitted views
    @property
    def coefs_(self):
        """list of ndarray : Weight tensors (dense: (n_in, n_out); conv: (out, in, k, k))."""
        return [layer.W for layer in self.network_.weight_layers]

    @property
    def intercepts_(self):
        """list of ndarray : Bias vectors of the weight layers."""
        return [layer.b for layer in self.network_.weight_layers]

    @property
    def masks_(self):
        """list of ndarray of bool : Weight masks; ``False`` weights are exactly zero."""
        return [layer.mask for layer in self.network_.weight_layers]

    @property
    def n_layers_(self):
        """int : Number of layers (input and output included), as in scikit-learn."""
        return len(self.network_.weight_layers) + 1

    # ----------------------------------------------------------- validation
    def _hidden_sizes(self):
        sizes = np.atleast_1d(np.asarray(self.hidden_layer_sizes, dtype=object))
        if sizes.ndim != 1:
            raise ValueError("hidden_layer_sizes must be a 1-D sequence of ints.")
        out = []
        for s in sizes.tolist():
            if not isinstance(s, Integral) or isinstance(s, bool) or s < 1:
                raise ValueError(
                    f"hidden_layer_sizes must contain positive ints, got {self.hidden_layer_sizes!r}."
                )
            out.append(int(s))
        return out

    def _make_activation(self):
        return Activation(self.activation, coefs=self.poly_coefs,
                          trainable=self.poly_trainable)

    def _dense_stack(self, sizes):
        """Dense layers through ``sizes``, the activation after all but the last."""
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(Dense(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(self._make_activation())
        return layers

    def _batch_size(self, n):
        if self.batch_size == "auto":
            # at least MIN_STEPS_PER_EPOCH updates per epoch on small data sets
            return int(min(200, max(1, -(-n // MIN_STEPS_PER_EPOCH))))
        if self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. "
                          "It is going to be clipped", UserWarning)
        return int(np.clip(self.batch_size, 1, n))

    # -------------------------------------------------------------- training
    def _is_fitted(self):
        return hasattr(self, "network_")

    #: Whether a fresh network is calibrated on the training inputs
    #: (:meth:`skhepex.nn.Network.calibrate`); the CNN keeps its tuned Glorot scale.
    _calibrate_init = True

    def _initialize(self, X, T, rng):
        self.network_ = self._build_network(X, T, rng)
        if self._calibrate_init:
            self.network_.calibrate(X)
        self.loss_curve_ = []
        self.n_iter_ = 0
        self.t_ = 0
        self.best_loss_ = np.inf
        self.validation_scores_ = [] if self.early_stopping else None
        self.best_validation_score_ = -np.inf if self.early_stopping else None
        self._no_improvement_count = 0
        self._optimizer = make_optimizer(self.solver, self.network_.params(),
                                         self.learning_rate_init)

    def _train(self, X, T, max_iter, incremental=False, rng=None, early_stopping=None):
        # The matrices of these networks are small: BLAS threads only add
        # synchronisation overhead (measured 5-15x slower with 2 threads under
        # load on a 2-core machine), so training runs single-threaded.
        with threadpool_limits(limits=1, user_api="blas"):
            return self._train_loop(X, T, max_iter, incremental, rng, early_stopping)

    def _train_loop(self, X, T, max_iter, incremental, rng, early_stopping):
        """Run ``max_iter`` epochs of masked mini-batch training on (X, T).

        ``T`` is the prepared network target (one-hot for classifiers). Used by
        ``fit``, ``partial_fit`` and ``fine_tune`` (the pruning steps): masked
        weights receive no gradient and are reset to exactly zero after every
        update.
        """
        net = self.network_
        rng = check_random_state(self.random_state) if rng is None else rng
        early_stopping = self.early_stopping if early_stopping is None else early_stopping
        early_stopping = early_stopping and not incremental
        X_val = T_val = None
        if early_stopping:
            stratify = T.argmax(axis=1) if getattr(self, "_is_classifier", False) else None
            try:
                X, X_val, T, T_val = train_test_split(
                    X, T, test_size=self.validation_fraction, random_state=rng,
                    stratify=stratify)
            except ValueError:
                X, X_val, T, T_val = train_test_split(
                    X, T, test_size=self.validation_fraction, random_state=rng)
            if self.validation_scores_ is None:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
        n = X.shape[0]
        bs = self._batch_size(n)
        params = net.params()
        layers = net.weight_layers
        best_params = None
        # the network's arrays may have been replaced (permutations): bind them once
        self._optimizer.params = params
        converged = False
        for _ in range(max_iter):
            order = rng.permutation(n) if not incremental else np.arange(n)
            total = 0.0
            for start in range(0, n, bs):
                idx = order[start:start + bs]
                xb, tb = X[idx], T[idx]
                out = net.forward(xb, train=True)
                loss, grad = self._loss(out, tb)
                net.backward(grad)
                m = len(idx)
                reg = 0.0
                for layer in layers:
                    layer.gW *= layer.mask
                    if self.alpha:
                        layer.gW += (self.alpha / m) * layer.W
                        reg += np.sum(layer.W * layer.W)
                loss += 0.5 * self.alpha * reg / m
                grads = net.grads()
                norm = np.sqrt(sum(float(np.sum(g * g)) for g in grads))
                if not np.isfinite(norm):
                    raise FloatingPointError(
                        "Training diverged (non-finite gradient); lower "
                        "learning_rate_init or use a 'poly' activation."
                    )
                if norm > MAX_GRAD_NORM:
                    for g in grads:
                        g *= MAX_GRAD_NORM / norm
                self._optimizer.step(grads)
                net.apply_masks()
                total += loss * m
            self.n_iter_ += 1
            self.t_ += n
            epoch_loss = total / n
            self.loss_curve_.append(epoch_loss)
            if self.verbose:
                logger.info("Iteration %d, loss = %.8f", self.n_iter_, epoch_loss)
            if incremental:
                continue
            if early_stopping:
                score = self._score_val(X_val, T_val)
                self.validation_scores_.append(score)
                # compared with the best *before* this epoch (as scikit-learn does)
                if score < self.best_validation_score_ + self.tol:
                    self._no_improvement_count += 1
                else:
                    self._no_improvement_count = 0
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    best_params = [p.copy() for p in params]
            else:
                if epoch_loss > self.best_loss_ - self.tol:
                    self._no_improvement_count += 1
                else:
                    self._no_improvement_count = 0
                self.best_loss_ = min(self.best_loss_, epoch_loss)
            if self._no_improvement_count > self.n_iter_no_change:
                converged = True
                self._no_improvement_count = 0
                break
        if not incremental and not converged and max_iter > 1:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({max_iter}) reached and "
                "the optimization hasn't converged yet.", ConvergenceWarning)
        if early_stopping and best_params is not None:
            for p, best in zip(params, best_params):
                p[...] = best
        if self.best_loss_ is not None and not np.isfinite(self.best_loss_):
            self.best_loss_ = min(self.loss_curve_) if self.loss_curve_ else np.inf
        net.clear_cache()
        return self

    def _score_val(self, X_val, T_val):
        out = self.network_.forward(X_val)
        loss, _ = self._loss(out, T_val)
        return -loss

    def _fit(self, X, T, incremental=False):
        rng = check_random_state(self.random_state)
        lo, hi = X.min(axis=0), X.max(axis=0)
        if not (self.warm_start or incremental) or not self._is_fitted():
            self._initialize(X, T, rng)
        else:
            if getattr(self, "input_range_", None) is not None:
                lo = np.minimum(lo, self.input_range_[0])
                hi = np.maximum(hi, self.input_range_[1])
            if not hasattr(self, "_optimizer"):
                self._optimizer = make_optimizer(self.solver, self.network_.params(),
                                                 self.learning_rate_init)
        # the box of the training inputs (flattened, original order): the default input
        # range encrypted inference is parametrised for
        self.input_range_ = (lo, hi)
        return self._train(X, T, 1 if incremental else self.max_iter,
                           incremental=incremental, rng=rng)

    def _continue_training(self, X, T, max_iter, random_state=None):
        """Training loop of :meth:`fine_tune` on prepared ``(X, T)``.

        A fresh optimizer is used (the pruning steps change the weights under
        it); early stopping follows the estimator's setting.
        """
        self._optimizer = make_optimizer(self.solver, self.network_.params(),
                                         self.learning_rate_init)
        self._no_improvement_count = 0
        self.best_loss_ = np.inf
        if self.early_stopping:
            self.best_validation_score_ = -np.inf
        rng = check_random_state(self.random_state if random_state is None else random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return self._train(X, T, max_iter, rng=rng)

    def _check_input(self, X):
        """``X`` validated for the fitted network: float64, finite, original order."""
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=np.float64)

    def _transform_stages(self):
        # transform is the input of the last weight layer: every stage but the last
        return self.n_stages_ - 1

    def _forward_upto_last(self, X):
        """Input of the last weight layer (the penultimate representation)."""
        net = self.network_
        last = net.layers.index(net.weight_layers[-1])
        out = net.forward(X, upto=last)
        return out.reshape(out.shape[0], -1)

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_optimizer", None)  # large, rebuilt on warm start
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


class _MLPMixin:
    """Dense architecture and ``transform`` shared by the two perceptrons."""

    def _build_network(self, X, T, rng):
        sizes = [X.shape[1], *self._hidden_sizes(), T.shape[1]]
        return Network(self._dense_stack(sizes), (X.shape[1],)).build(rng)

    def transform(self, X):
        """Return the last hidden layer's activations.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to represent.

        Returns
        -------
        H : ndarray of shape (n_samples, n_hidden)
            Representation fed to the output layer (the network's internal
            hidden order).
        """
        X = self._check_input(X)
        return self.output_head(self._forward_upto_last(X), "transform")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags = TransformerTags()  # transform: hidden representation
        tags.transformer_tags.preserves_dtype = []  # always float64
        return tags
