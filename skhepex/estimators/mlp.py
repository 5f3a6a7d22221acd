"""Multi-layer perceptron classifier :class:`MLPClassifier`.

:class:`MLPRegressor` lives in :mod:`skhepex.estimators.regressor` (re-exported
here).
"""

import numpy as np
from sklearn.base import ClassifierMixin, TransformerMixin
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import validate_data

from ..nn.losses import softmax, softmax_cross_entropy
from ._base import BaseNetwork, _MLPMixin
from .regressor import MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]


class MLPClassifier(_MLPMixin, ClassifierMixin, TransformerMixin, BaseNetwork):
    """Multi-layer perceptron classifier (NumPy), HE-friendly by default.

    A softmax output layer is trained with cross-entropy. With the default
    ``activation="square"`` the network can be evaluated under CKKS
    encryption by :class:`skhepex.HEPredictor`.

    Parameters
    ----------
    hidden_layer_sizes : array-like of int, default=(100,)
        Number of neurons of each hidden layer, from the input side.
    activation : {"square", "poly", "relu", "tanh", "logistic", "identity"}, default="square"
        Hidden activation. Only ``"square"`` and ``"poly"`` (``a x^2 + b x + c``)
        can be evaluated under homomorphic encryption.
    poly_coefs : tuple of 3 floats, default=None
        Initial ``(a, b, c)`` of the ``"poly"`` activation; ``None`` means
        ``(0.125, 0.5, 0.25)``.
    poly_trainable : bool, default=False
        Learn the ``"poly"`` coefficients (one triple per hidden layer).
    solver : {"adam", "sgd"}, default="adam"
        Optimizer: Adam, or SGD with Nesterov momentum.
    alpha : float, default=1e-4
        Strength of the L2 penalty on the weights.
    batch_size : int or "auto", default="auto"
        Mini-batch size; ``"auto"`` is ``min(200, ceil(n_samples / 4))``, so
        small data sets still get four updates per epoch (scikit-learn's
        ``min(200, n_samples)`` gives one).
    learning_rate_init : float, default=5e-3
        Step size of the optimizer (larger than scikit-learn's 1e-3: the
        polynomial networks need it to train as fast per epoch).
    max_iter : int, default=200
        Maximum number of epochs.
    tol : float, default=1e-4
        Improvement of the loss (or validation score) below which an epoch
        counts as no improvement.
    early_stopping : bool, default=False
        Hold out a stratified ``validation_fraction`` of the data, stop when
        its score stops improving and restore the best weights.
    validation_fraction : float, default=0.1
        Fraction of the training data held out for early stopping.
    n_iter_no_change : int, default=10
        Epochs without improvement before training stops.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the shuffling and the validation split.
    verbose : bool, default=False
        Log the loss of every epoch (logger ``"skhepex"``, level INFO).
    warm_start : bool, default=False
        Let ``fit`` continue from the previous weights instead of
        reinitialising them.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    coefs_ : list of ndarray
        Weight matrices, ``coefs_[i]`` of shape (n_in, n_out).
    intercepts_ : list of ndarray
        Bias vector of every layer.
    masks_ : list of ndarray of bool
        Weight masks; masked weights stay exactly zero through any training.
    network_ : skhepex.nn.Network
        The fitted network (layers, masks and permutations).
    loss_curve_ : list of float
        Mean training loss of each epoch.
    n_iter_ : int
        Number of epochs run.
    n_features_in_ : int
        Number of features seen by ``fit``.

    See Also
    --------
    sklearn.neural_network.MLPClassifier : Scikit-learn's (non-HE) counterpart.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skhepex import MLPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=20, random_state=0)
    >>> clf.fit(X / 16, y).score(X / 16, y) > 0.9
    True
    """

    _is_classifier = True
    _head_methods = ("predict", "predict_proba", "predict_log_proba", "decision_function")

    def _loss(self, out, T):
        return softmax_cross_entropy(out, T)

    def _onehot(self, y):
        n_classes = len(self.classes_)
        idx = np.searchsorted(self.classes_, y)
        if np.any(idx >= n_classes) or np.any(self.classes_[np.minimum(idx, n_classes - 1)] != y):
            raise ValueError(f"y contains labels not in classes_ {self.classes_!r}.")
        T = np.zeros((len(y), len(self.classes_)))
        T[np.arange(len(y)), idx] = 1.0
        return T

    def _validate_fit(self, X, y, reset=True):
        X, y = validate_data(self, X, y, reset=reset, dtype=np.float64)
        check_classification_targets(y)
        return X, y

    def fit(self, X, y):
        """Train the network on (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training samples.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : MLPClassifier
            Fitted estimator.
        """
        self._validate_params()
        warm = self.warm_start and self._is_fitted()
        X, y = self._validate_fit(X, y, reset=not warm)
        classes = unique_labels(y)
        if warm and not np.array_equal(classes, self.classes_):
            if not set(classes) <= set(self.classes_):
                raise ValueError("warm_start can only be used where `y` has the same "
                                 "classes as in the previous call to fit.")
        else:
            self.classes_ = classes
        return self._fit(X, self._onehot(y))

    def partial_fit(self, X, y, classes=None):
        """Run one epoch of training on (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A batch of training samples.
        y : array-like of shape (n_samples,)
            Their labels.
        classes : array-like, default=None
            All classes; required on the first call.

        Returns
        -------
        self : MLPClassifier
            Updated estimator.
        """
        first = not self._is_fitted()
        if first:
            self._validate_params()
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self.classes_ = unique_labels(classes)
        X, y = self._validate_fit(X, y, reset=first)
        return self._fit(X, self._onehot(y), incremental=True)

    def _target_matrix(self, X, y):
        if y is None:
            raise ValueError(f"{type(self).__name__} needs the class labels y.")
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:  # column vector, as fit accepts
            y = y.ravel()
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"y must hold one label per sample of X ({X.shape[0]}); "
                             f"got shape {y.shape}.")
        return self._onehot(y)

    def _head(self, out, method):
        if method == "predict":
            return self.classes_[np.argmax(out, axis=1)]
        if method == "decision_function":
            return out[:, 1] - out[:, 0] if out.shape[1] == 2 else out
        proba = softmax(out)
        if method == "predict_log_proba":
            return np.log(np.clip(proba, 1e-300, None))
        return proba

    def decision_function(self, X):
        """Confidence scores: logits, or their difference for two classes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            Logits; for binary problems ``logit[1] - logit[0]`` (positive means
            ``classes_[1]``), as scikit-learn's convention.
        """
        return self.output_head(self._raw_forward(X), "decision_function")

    def predict_proba(self, X):
        """Class probabilities: softmax of the logits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples whose class probabilities to compute.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probability of each class of ``classes_``.
        """
        return self.output_head(self._raw_forward(X), "predict_proba")

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples whose class log-probabilities to compute.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log-probability of each class of ``classes_``.
        """
        return self.output_head(self._raw_forward(X), "predict_log_proba")

    def predict(self, X):
        """Predicted class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to classify.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            The class of highest logit.
        """
        return self.output_head(self._raw_forward(X), "predict")
