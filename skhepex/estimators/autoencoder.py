"""Fully connected (denoising) autoencoder."""

import numpy as np
from sklearn.base import TransformerMixin
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ..nn.losses import squared_error
from ..nn.network import Network
from ._base import BaseNetwork, shared_params


class Autoencoder(TransformerMixin, BaseNetwork):
    """Fully connected autoencoder (NumPy), HE-friendly by default.

    ``hidden_layer_sizes=(32,)`` on 64 features builds 64-32-64;
    ``(128, 32, 128)`` builds 64-128-32-128-64. The *code* is the middle
    hidden layer (after its activation). The output layer is linear and the
    loss is the squared reconstruction error. ``fit(X)`` learns to reconstruct
    ``X``; ``fit(X_noisy, X_clean)`` trains a denoising autoencoder.

    Parameters
    ----------
    hidden_layer_sizes : array-like of int, default=(32,)
        Hidden widths, encoder then decoder; the middle one is the code.
    activation : {"square", "poly", "relu", "tanh", "logistic", "identity"}, default="square"
        Activation after every hidden layer (the code included). Use
        ``"square"`` or ``"poly"`` to encode or reconstruct under encryption.
    poly_coefs : tuple of 3 floats, default=None
        Initial coefficients ``(a, b, c)`` of the ``"poly"`` activation
        ``a x^2 + b x + c``, by default ``(0.125, 0.5, 0.25)``.
    poly_trainable : bool, default=False
        Whether the ``"poly"`` coefficients are trained too.
    solver : {"adam", "sgd"}, default="adam"
        Gradient method used for the reconstruction loss.
    alpha : float, default=1e-4
        Weight decay (L2 penalty).
    batch_size : int or "auto", default="auto"
        Size of the mini-batches; ``"auto"`` means ``min(200, ceil(n_samples / 4))``
        (at least four updates per epoch).
    learning_rate_init : float, default=5e-3
        Initial step size of the solver (larger than scikit-learn's 1e-3:
        with it the autoencoder converges within ``max_iter``).
    max_iter : int, default=500
        Most epochs one ``fit`` runs. Training normally stops earlier, on
        ``tol``: digits autoencoders converge in 130 to 220 epochs.
    tol : float, default=1e-4
        Smallest reconstruction-loss improvement that resets the patience.
    early_stopping : bool, default=False
        Monitor the reconstruction error of held-out samples and stop (with
        the best weights) when it no longer improves.
    validation_fraction : float, default=0.1
        Proportion of samples set aside when ``early_stopping`` is on.
    n_iter_no_change : int, default=10
        Epochs tolerated without improvement.
    random_state : int, RandomState instance or None, default=None
        Random seed of the weights, the batch order and the held-out split.
    verbose : bool, default=False
        Report the reconstruction loss after each epoch (``"skhepex"`` logger).
    warm_start : bool, default=False
        Start the next ``fit`` from the current weights.

    Attributes
    ----------
    coefs_ : list of ndarray
        Encoder and decoder weight matrices, each (n_in, n_out).
    intercepts_ : list of ndarray
        Encoder and decoder biases.
    masks_ : list of ndarray of bool
        Masks of the weights; pruned weights are zero.
    network_ : skhepex.nn.Network
        The encoder-decoder network.
    loss_curve_ : list of float
        Reconstruction loss of each epoch.
    n_iter_ : int
        Epochs completed.
    n_features_in_ : int
        Dimension of the inputs.
    code_layer_ : int
        Index (among hidden layers) of the code layer.

    See Also
    --------
    MLPRegressor : The same network trained on arbitrary targets.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skhepex import Autoencoder
    >>> X = load_digits().data / 16
    >>> ae = Autoencoder(hidden_layer_sizes=(32,), max_iter=5, random_state=0).fit(X)
    >>> ae.transform(X).shape
    (1797, 32)
    """

    def __init__(self, hidden_layer_sizes=(32,), activation="square", *, poly_coefs=None,
                 poly_trainable=False, solver="adam", alpha=1e-4, batch_size="auto",
                 learning_rate_init=5e-3, max_iter=500, tol=1e-4, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, random_state=None,
                 verbose=False, warm_start=False):
        super().__init__(**shared_params(locals()))

    def _build_network(self, X, T, rng):
        hidden = self._hidden_sizes()
        self.code_layer_ = len(hidden) // 2
        sizes = [X.shape[1], *hidden, T.shape[1]]
        return Network(self._dense_stack(sizes), (X.shape[1],)).build(rng)

    def _loss(self, out, T):
        return squared_error(out, T)

    def _targets(self, X, y):
        if y is None or np.asarray(y).ndim == 1:
            return X
        y = check_array(y, dtype=np.float64, input_name="y")
        if y.ndim != 2 or y.shape[0] != X.shape[0]:
            raise ValueError(
                f"The clean target must have shape {X.shape}; got {y.shape}."
            )
        return y

    def fit(self, X, y=None):
        """Learn to reconstruct ``y`` (``X`` itself when ``y`` is None) from ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs (noisy inputs for a denoising autoencoder).
        y : array-like of shape (n_samples, n_outputs), default=None
            Reconstruction targets (the clean data); defaults to ``X``. A 1-D
            ``y`` (such as class labels passed through a ``Pipeline`` or a
            cross-validation splitter) is ignored.

        Returns
        -------
        self : Autoencoder
            Fitted estimator.
        """
        self._validate_params()
        warm = self.warm_start and self._is_fitted()
        X = validate_data(self, X, reset=not warm, dtype=np.float64)
        T = self._targets(X, y)
        return self._fit(X, T)

    def partial_fit(self, X, y=None):
        """Run one epoch of training; see :meth:`fit`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One batch of inputs (noisy ones when training a denoiser).
        y : array-like of shape (n_samples, n_outputs), default=None
            Clean version of the batch; defaults to ``X``.

        Returns
        -------
        self : Autoencoder
            The estimator, trained one more epoch.
        """
        first = not self._is_fitted()
        if first:
            self._validate_params()
        X = validate_data(self, X, reset=first, dtype=np.float64)
        return self._fit(X, self._targets(X, y), incremental=True)

    def _target_matrix(self, X, y):
        return self._targets(X, y)

    def _head(self, out, method):
        return out  # the reconstruction, as is

    def _transform_stages(self):
        return int(self.code_layer_) + 1  # the encoder: up to the code layer

    def _code_index(self):
        """Layer index just after the code layer's activation."""
        net = self.network_
        acts = [i for i, layer in enumerate(net.layers) if layer.kind == "activation"]
        return acts[self.code_layer_] + 1

    def transform(self, X):
        """Encode ``X``: the code layer's activations.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to encode.

        Returns
        -------
        code : ndarray of shape (n_samples, n_code)
            The code of every sample.
        """
        X = self._check_input(X)
        return self.output_head(self.network_.forward(X, upto=self._code_index()),
                                "transform")

    def inverse_transform(self, X):
        """Decode codes back to the input space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_code)
            Codes, as returned by :meth:`transform`.

        Returns
        -------
        X_rec : ndarray of shape (n_samples, n_outputs)
            Reconstructions.
        """
        check_is_fitted(self)
        net = self.network_
        start = self._code_index()
        code = np.asarray(X, dtype=np.float64)
        n_code = net.shapes()[start][0]
        if code.ndim != 2 or code.shape[1] != n_code:
            raise ValueError(f"Expected codes of shape (n_samples, {n_code}); got {code.shape}.")
        for layer in net.layers[start:]:
            code = layer.forward(code)
        return self.output_head(code, "predict")

    def predict(self, X):
        """Reconstruct ``X`` (encode then decode).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to reconstruct (noisy ones for a denoising autoencoder).

        Returns
        -------
        X_rec : ndarray of shape (n_samples, n_outputs)
            Reconstructions.
        """
        return self.output_head(self._raw_forward(X), "predict")

    def score(self, X, y=None, sample_weight=None):
        """R² of the reconstruction of ``y`` (``X`` when None) from ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like, default=None
            Clean targets of shape (n_samples, n_outputs); defaults to ``X``
            (a 1-D ``y`` is ignored, as in :meth:`fit`).
        sample_weight : array-like, default=None
            Sample weights.

        Returns
        -------
        score : float
            Variance-weighted R² over the outputs.
        """
        X_rec = self.predict(X)
        target = np.asarray(X if y is None or np.asarray(y).ndim == 1 else y, dtype=np.float64)
        return r2_score(target, X_rec, sample_weight=sample_weight,
                        multioutput="variance_weighted")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.target_tags.multi_output = True
        tags.transformer_tags.preserves_dtype = []
        return tags
