"""Multi-layer perceptron regressor :class:`MLPRegressor`, with built-in target scaling."""

import warnings

import numpy as np
from sklearn.base import RegressorMixin, TransformerMixin
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import validate_data

from ..nn.losses import squared_error
from ._base import BaseNetwork, _MLPMixin, shared_params

__all__ = ["MLPRegressor"]

#: With ``target_scaling=None``, targets whose standard deviation lies outside
#: ``TARGET_SCALE_BOUNDS`` or whose mean exceeds ``TARGET_MEAN_BOUND`` in absolute
#: value draw a warning: the network's outputs start near zero at unit scale, its
#: gradients are clipped and ``tol`` is absolute, so it fits such targets slowly
#: or badly. Measured on ``check_regressors_train``'s data with 20 epochs (R^2
#: 0.86 for standardised targets): standard deviation 30 -> 0.64, 100 -> 0.32,
#: 0.01 -> 0.72; mean 2 -> 0.62, 3 -> 0.23, 10 -> -8.8.
TARGET_SCALE_BOUNDS = (0.1, 10.0)
TARGET_MEAN_BOUND = 2.0


class MLPRegressor(_MLPMixin, RegressorMixin, TransformerMixin, BaseNetwork):
    """Multi-layer perceptron regressor (NumPy), HE-friendly by default.

    Identity output trained with the squared error; single- or multi-output.

    Parameters
    ----------
    hidden_layer_sizes : array-like of int, default=(100,)
        Widths of the hidden layers.
    activation : {"square", "poly", "relu", "tanh", "logistic", "identity"}, default="square"
        Activation of the hidden layers; ``"square"`` and ``"poly"`` are the
        HE-compatible ones (polynomials).
    poly_coefs : tuple of 3 floats, default=None
        Starting ``(a, b, c)`` of ``"poly"`` (``a x^2 + b x + c``); ``None``
        is ``(0.125, 0.5, 0.25)``.
    poly_trainable : bool, default=False
        Train the ``"poly"`` coefficients along with the weights.
    solver : {"adam", "sgd"}, default="adam"
        Adam or momentum SGD.
    alpha : float, default=1e-4
        L2 regularisation of the weights.
    batch_size : int or "auto", default="auto"
        Samples per gradient step (``"auto"``: ``min(200, ceil(n_samples / 4))``).
    learning_rate_init : float, default=5e-3
        Learning rate (scikit-learn's is 1e-3; polynomial networks train
        faster per epoch with this one).
    max_iter : int, default=200
        Epoch budget of ``fit``.
    tol : float, default=1e-4
        Convergence tolerance on the epoch loss (or validation score).
    early_stopping : bool, default=False
        Stop when the R² of a held-out ``validation_fraction`` stops
        improving, keeping the best weights.
    validation_fraction : float, default=0.1
        Share of the data used as the early-stopping validation set.
    n_iter_no_change : int, default=10
        Patience, in epochs.
    random_state : int, RandomState instance or None, default=None
        Controls initialisation, shuffling and the validation split.
    verbose : bool, default=False
        Log each epoch's loss to the ``"skhepex"`` logger.
    warm_start : bool, default=False
        Reuse the fitted weights as the starting point of the next ``fit``.
    target_scaling : {"auto"} or None, default="auto"
        ``"auto"`` trains on the targets standardised per output (their
        training mean and standard deviation, a zero deviation counting as
        one) and, after every training call, folds the inverse map into the
        output layer (``W * scale``, ``b * scale + mean``): the network's raw
        outputs, hence ``predict`` and encrypted inference, are in the
        original units with no post-processing, and the masks (tiles) are
        unchanged. The statistics are taken when the network is initialised
        (the first ``fit``, or the first ``partial_fit`` batch) and kept by
        ``warm_start``, ``partial_fit`` and ``fine_tune``. ``None`` trains on
        the raw targets and warns when their scale is far from one.

    Attributes
    ----------
    coefs_ : list of ndarray
        Weights of every layer, shape (n_in, n_out); the output layer's
        include the folded target scaling.
    intercepts_ : list of ndarray
        Biases of every layer.
    masks_ : list of ndarray of bool
        Which weights are kept; the others are exactly zero.
    network_ : skhepex.nn.Network
        The underlying NumPy network.
    loss_curve_ : list of float
        Loss after each epoch (in standardised units with ``target_scaling``).
    n_iter_ : int
        Epochs trained so far.
    n_features_in_ : int
        Number of input features.
    n_outputs_ : int
        Number of regression targets.
    target_mean_ : ndarray of shape (n_outputs,)
        Mean subtracted from the targets for training (zeros without
        ``target_scaling``).
    target_scale_ : ndarray of shape (n_outputs,)
        Divisor of the centred targets for training (ones without
        ``target_scaling``).

    See Also
    --------
    sklearn.neural_network.MLPRegressor : The plaintext scikit-learn regressor.

    Examples
    --------
    >>> import numpy as np
    >>> from skhepex import MLPRegressor
    >>> X = np.random.RandomState(0).rand(200, 3)
    >>> reg = MLPRegressor(hidden_layer_sizes=(16,), max_iter=300, random_state=0)
    >>> reg.fit(X, X.sum(axis=1)).score(X, X.sum(axis=1)) > 0.9
    True
    """

    _parameter_constraints = {
        **BaseNetwork._parameter_constraints,
        "target_scaling": [StrOptions({"auto"}), None],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="square", *, poly_coefs=None,
                 poly_trainable=False, solver="adam", alpha=1e-4, batch_size="auto",
                 learning_rate_init=5e-3, max_iter=200, tol=1e-4, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, random_state=None,
                 verbose=False, warm_start=False, target_scaling="auto"):
        self.target_scaling = target_scaling
        super().__init__(**shared_params(locals()))

    def _loss(self, out, T):
        return squared_error(out, T)

    # ------------------------------------------------------- target scaling
    def _initialize(self, X, T, rng):
        mean, scale = np.zeros(T.shape[1]), np.ones(T.shape[1])
        if self.target_scaling == "auto":
            mean, scale = T.mean(axis=0), T.std(axis=0)
            tiny = 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))
            scale = np.where(scale > tiny, scale, 1.0)
        else:
            self._warn_target_scale(T)
        self.target_mean_, self.target_scale_ = mean, scale
        super()._initialize(X, T, rng)  # built in standardised units ...
        self.network_.fold_output_affine(scale, mean)  # ... kept in the original ones

    def _warn_target_scale(self, T):
        std, mean = T.std(axis=0), np.abs(T.mean(axis=0))
        lo, hi = TARGET_SCALE_BOUNDS
        if np.any(std > hi) or np.any((std > 0) & (std < lo)) or np.any(mean > TARGET_MEAN_BOUND):
            warnings.warn(
                f"{type(self).__name__}: the targets have standard deviation up to "
                f"{std.max():.3g} and mean up to {mean.max():.3g} in absolute value, far "
                "from unit scale; with target_scaling=None the network (whose outputs "
                "start near zero, with clipped gradients) is likely to fit them badly. "
                "Use target_scaling='auto' (the default) or standardise y.", UserWarning)

    def _train(self, X, T, max_iter, incremental=False, rng=None, early_stopping=None):
        """Train in standardised target units; the network is in original units outside."""
        mean, scale = self.target_mean_, self.target_scale_
        if not np.any(mean) and np.all(scale == 1.0):
            return super()._train(X, T, max_iter, incremental, rng, early_stopping)
        net = self.network_
        net.fold_output_affine(1.0 / scale, -mean / scale)
        try:
            return super()._train(X, (T - mean) / scale, max_iter, incremental, rng,
                                  early_stopping)
        finally:
            net.fold_output_affine(scale, mean)

    def loss_gradient(self, out, T):
        """Training loss of raw outputs and its gradient (standardised units).

        Parameters
        ----------
        out : ndarray of shape (n_samples, n_outputs)
            Raw network outputs in the original order (and original target
            units), as returned by ``network_.forward``.
        T : ndarray of shape (n_samples, n_outputs)
            Targets, as returned by :meth:`training_targets`.

        Returns
        -------
        loss : float
            Half squared error of the standardised outputs and targets
            (``(out - T) / target_scale_``), the loss the training loop
            minimises, without the L2 penalty.
        grad : ndarray of shape (n_samples, n_outputs)
            Gradient of ``loss`` with respect to ``out``, to pass to
            ``network_.backward``.
        """
        scale = self.target_scale_
        loss, grad = squared_error(np.asarray(out) / scale, np.asarray(T) / scale)
        return loss, grad / scale

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _targets(self, y, reset):
        y = np.asarray(y, dtype=np.float64)
        if reset:
            self._y_1d = y.ndim == 1
        T = y.reshape(-1, 1) if y.ndim == 1 else y
        if not reset and T.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {T.shape[1]} outputs, expected {self.n_outputs_}.")
        self.n_outputs_ = T.shape[1]
        return T

    def fit(self, X, y):
        """Fit the regression network to (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Regression targets.

        Returns
        -------
        self : MLPRegressor
            Fitted estimator.
        """
        self._validate_params()
        warm = self.warm_start and self._is_fitted()
        X, y = validate_data(self, X, y, reset=not warm, multi_output=True,
                             y_numeric=True, dtype=np.float64)
        return self._fit(X, self._targets(y, reset=not warm))

    def partial_fit(self, X, y):
        """Run one epoch of training on a batch (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs of the batch.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets of the batch.

        Returns
        -------
        self : MLPRegressor
            The regressor, trained one more epoch.
        """
        first = not self._is_fitted()
        if first:
            self._validate_params()
        X, y = validate_data(self, X, y, reset=first, multi_output=True,
                             y_numeric=True, dtype=np.float64)
        return self._fit(X, self._targets(y, reset=first), incremental=True)

    def _target_matrix(self, X, y):
        if y is None:
            raise ValueError(f"{type(self).__name__} needs the targets y.")
        y = np.asarray(y, dtype=np.float64)
        T = y.reshape(-1, 1) if y.ndim == 1 else y
        if T.ndim != 2 or T.shape[0] != X.shape[0] or T.shape[1] != self.n_outputs_:
            raise ValueError(f"y must have shape ({X.shape[0]},) or ({X.shape[0]}, "
                             f"{self.n_outputs_}); got {y.shape}.")
        return T

    def _head(self, out, method):
        return out.ravel() if self._y_1d else out

    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to predict.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Predictions; 1-D when the network was fitted on a 1-D ``y``.
        """
        return self.output_head(self._raw_forward(X), "predict")
