"""The public network contract: what every skhepex network offers to the rest.

Pruning, tiling and encrypted inference work on *skhepex networks*: fitted
estimators implementing :class:`NetworkMixin` (``MLPClassifier``,
``MLPRegressor``, ``Autoencoder`` and ``CNNClassifier``). They reach them only
through public names:

* :class:`NetworkMixin` -- the methods a network offers: :meth:`~NetworkMixin.fine_tune`,
  :meth:`~NetworkMixin.training_targets`, :meth:`~NetworkMixin.loss_gradient`
  (pruning), :meth:`~NetworkMixin.encode_input`, :meth:`~NetworkMixin.output_head`,
  :attr:`~NetworkMixin.n_stages_`, :attr:`~NetworkMixin.n_transform_stages_`
  (encrypted inference), and the fitted ``network_``
  (:class:`skhepex.nn.Network`, whose linear stages are what gets tiled).
* :func:`is_network`, :func:`check_network` -- "is this a skhepex network?".
* :func:`~skhepex.estimators.get_network`,
  :func:`~skhepex.estimators.get_tile_shape` -- find the network (and the tile
  shape it was pruned for) inside a wrapper; see
  :mod:`skhepex.estimators.wrappers` for the wrapper protocol.
"""

import sys
from numbers import Integral

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

__all__ = ["NetworkMixin", "is_network", "check_network"]

#: ``method`` values :meth:`NetworkMixin.output_head` may accept.
OUTPUT_METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function",
                  "transform")

_SUPPORTED = ("skhepex.MLPClassifier, skhepex.MLPRegressor, skhepex.Autoencoder or "
              "skhepex.CNNClassifier")


class NetworkMixin:
    """The contract every skhepex network implements.

    A *skhepex network* is a scikit-learn estimator backed by a NumPy
    :class:`skhepex.nn.Network` whose layers decompose into *linear stages*
    (one weight layer each, :meth:`skhepex.nn.Network.stages`), each followed
    by an optional element-wise activation. Pruning, the tiling layout and
    encrypted inference use a network only through this contract (plus the
    fitted ``network_``), never through private names; ``is_network(obj)`` is
    ``isinstance(obj, NetworkMixin)``.

    **Data flow.** Encrypted (or any packed) inference of a fitted network
    ``est`` is::

        Z = est.encode_input(X)            # client: validate, flatten, permute
        for st in est.network_.stages():   # server: the packed stages
            Z = Z @ st.matrix().T + st.bias()
            if st.activation is not None:
                Z = st.activation.forward(Z)
        y = est.output_head(Z, "predict")  # client: un-permute, post-process

    and gives exactly ``est.predict(X)``: the plaintext methods
    (``predict``, ``predict_proba``, ``predict_log_proba``,
    ``decision_function``, ``transform``) are themselves defined as
    :meth:`output_head` of the raw outputs, so post-processing and the undoing
    of the output permutation have a single definition. ``transform`` runs the
    first :attr:`n_transform_stages_` stages only.

    **Training.** :meth:`fine_tune` continues training with the weight masks
    fixed; :meth:`training_targets` and :meth:`loss_gradient` expose the data
    and loss the training loop uses, for pruning criteria that need gradients
    (``out = est.network_.forward(X_net, train=True)``, then
    ``loss, grad = est.loss_gradient(out, T)`` and
    ``est.network_.backward(grad)``).

    **Wrappers.** Meta-estimators holding a network take part through the
    ``__skhepex_network__()`` and ``__skhepex_tile_shape__()`` protocol
    described in :mod:`skhepex.estimators.wrappers`; use
    :func:`~skhepex.estimators.get_network` and
    :func:`~skhepex.estimators.get_tile_shape` rather than inspecting wrappers.

    Attributes
    ----------
    network_ : skhepex.nn.Network
        The fitted network (weights, masks, input/output permutations).
    n_stages_ : int
        Number of linear stages (weight layers).
    n_transform_stages_ : int or None
        Number of leading stages ``transform`` evaluates; ``None`` when the
        network offers no ``transform``.
    input_range_ : tuple of ndarray
        ``(lo, hi)``: per-feature minimum and maximum of the training inputs
        (flattened, original feature order), the default input box encrypted
        inference chooses its CKKS parameters for.

    Notes
    -----
    Implementing the contract (for a new network class) means providing,
    besides ``fit`` and the usual estimator methods, these private hooks
    that the public methods are written in terms of:

    ``_check_input(X)``
        ``X`` validated against the fitted network (``reset=False``, finite,
        float64) and flattened to (n_samples, n_features), original feature
        order. Raises ``NotFittedError`` when unfitted.
    ``_target_matrix(X, y)``
        The training target matrix ``T`` for the validated ``X``.
    ``_loss(out, T)``
        Loss value and gradient with respect to ``out``.
    ``_continue_training(X, T, max_iter, random_state)``
        The training loop on prepared data, fresh optimizer, masks fixed.
    ``_head(out, method)`` and ``_head_methods``
        Post-processing of un-permuted outputs, and the tuple of ``method``
        values offered besides ``"transform"``.
    ``_transform_stages()``
        The value of :attr:`n_transform_stages_`.
    """

    _head_methods = ("predict",)

    # ------------------------------------------------------------ structure
    @property
    def n_stages_(self):
        """int : Number of linear stages (weight layers) of the fitted network."""
        return len(self.network_.weight_layers)

    @property
    def n_transform_stages_(self):
        """int or None : Linear stages evaluated by ``transform``, ``None`` without one.

        The output of ``transform`` is the output (after its activation) of
        stage ``n_transform_stages_ - 1``: the code layer of an autoencoder,
        the last hidden layer of an MLP or CNN.
        """
        check_is_fitted(self, "network_")
        return self._transform_stages()

    def _transform_stages(self):
        return None

    # ------------------------------------------------------------- training
    def fine_tune(self, X, y=None, *, max_iter, random_state=None):
        """Continue training the fitted network for ``max_iter`` epochs, masks fixed.

        The weight masks (``masks_``) do not change: masked weights get no
        gradient and stay exactly zero. A fresh optimizer is used (pruning
        changes the weights under the old one); early stopping follows the
        estimator's ``early_stopping``; ``ConvergenceWarning`` is suppressed.
        This is what the pruning steps call between pruning rounds.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, as accepted by ``fit`` (4-D images for a CNN).
        y : array-like, default=None
            Training targets as accepted by ``fit``: class labels
            (classifiers, a column vector is accepted), targets (regressors),
            clean data (autoencoders; ``None`` or 1-D means ``X``).
        max_iter : int
            Number of epochs; ``max_iter <= 0`` returns ``self`` unchanged.
        random_state : int, RandomState instance or None, default=None
            Seeds the shuffling (and validation split); ``None`` uses the
            estimator's ``random_state``.

        Returns
        -------
        self : estimator
            The network, trained further in place.
        """
        check_is_fitted(self, "network_")
        if not isinstance(max_iter, Integral) or isinstance(max_iter, bool):
            raise ValueError(f"max_iter must be an int; got {max_iter!r}.")
        if max_iter <= 0:
            return self
        X_net, T = self.training_targets(X, y)
        return self._continue_training(X_net, T, int(max_iter), random_state)

    def training_targets(self, X, y=None):
        """Inputs and target matrix of the network's training loss.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data, as accepted by ``fit`` (4-D images for a CNN).
        y : array-like, default=None
            Targets, as for :meth:`fine_tune`.

        Returns
        -------
        X_net : ndarray of shape (n_samples, n_features)
            ``X`` validated and flattened (channel-major for a CNN), in the
            *original* feature order: ``network_.forward`` applies the input
            permutation itself.
        T : ndarray of shape (n_samples, n_outputs)
            Target of the network outputs (original output order): one-hot
            rows for classifiers, column targets for regressors, the clean
            data for autoencoders.
        """
        X_net = self._check_input(X)
        return X_net, self._target_matrix(X_net, y)

    def loss_gradient(self, out, T):
        """Training loss of raw outputs and its gradient.

        Parameters
        ----------
        out : ndarray of shape (n_samples, n_outputs)
            Raw network outputs in the original order, as returned by
            ``network_.forward``.
        T : ndarray of shape (n_samples, n_outputs)
            Targets, as returned by :meth:`training_targets`.

        Returns
        -------
        loss : float
            Mean loss (cross-entropy of the softmax for classifiers, half
            squared error otherwise), without the L2 penalty.
        grad : ndarray of shape (n_samples, n_outputs)
            Gradient of ``loss`` with respect to ``out``, to pass to
            ``network_.backward``.
        """
        return self._loss(out, T)

    # ------------------------------------------------------------ inference
    def encode_input(self, X):
        """Encode samples as the first packed stage multiplies them.

        This is the client-side encoding before encryption: ``X`` is
        validated like in ``predict``, flattened channel-major (CNN) and its
        features are put in the network's input order
        (``X[:, network_.input_perm]``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples, as accepted by ``predict`` (4-D images for a CNN).

        Returns
        -------
        Z : ndarray of shape (n_samples, n_inputs), dtype float64
            Input of the first linear stage.
        """
        X = self._check_input(X)
        perm = self.network_.input_perm
        if perm is not None:
            X = X[:, perm]
        return np.ascontiguousarray(X, dtype=np.float64)

    def output_head(self, raw, method="predict"):
        """Turn raw outputs of the packed stages into the estimator's results.

        Parameters
        ----------
        raw : array-like of shape (n_samples, n_outputs)
            For ``method="transform"``: outputs of the first
            :attr:`n_transform_stages_` stages (their order is the network's
            internal hidden order, as plaintext ``transform`` returns it).
            Otherwise: outputs of the last stage in the packed order, i.e.
            before the output permutation is undone.
        method : {"predict", "predict_proba", "predict_log_proba", \
"decision_function", "transform"}, default="predict"
            The estimator method whose result to produce; only methods the
            estimator offers are accepted.

        Returns
        -------
        result : ndarray
            What ``getattr(self, method)(X)`` returns for the samples behind
            ``raw``: class labels, probabilities, log-probabilities or
            decision values (classifiers), predictions (regressors),
            reconstructions (autoencoders), the representation (transform).

        Raises
        ------
        ValueError
            If the estimator does not offer ``method`` or ``raw`` has the
            wrong shape.
        """
        check_is_fitted(self, "network_")
        offered = tuple(self._head_methods)
        n_tr = self._transform_stages()
        if n_tr is not None:
            offered += ("transform",)
        if method not in offered:
            raise ValueError(
                f"{type(self).__name__} offers no output {method!r}; output_head "
                f"accepts {offered}.")
        raw = np.asarray(raw, dtype=np.float64)
        if not np.all(np.isfinite(raw)):
            raise ValueError(
                f"{type(self).__name__} produced non-finite outputs (overflow): the inputs are "
                f"far outside the range the network was trained on (training inputs span "
                f"[{float(np.min(self.input_range_[0])):.3g}, "
                f"{float(np.max(self.input_range_[1])):.3g}]); scale them like the training "
                f"data" if getattr(self, "input_range_", None) is not None else
                f"{type(self).__name__} produced non-finite outputs (overflow): the inputs are "
                f"far outside the range the network was trained on")
        net = self.network_
        if method == "transform":
            width = (net.stages()[n_tr - 1].n_out if n_tr > 0
                     else int(np.prod(net.input_shape)))
        else:
            width = int(np.prod(net.shapes()[-1]))
        if raw.ndim != 2 or raw.shape[1] != width:
            raise ValueError(
                f"raw outputs for {method!r} must have shape (n_samples, {width}); "
                f"got {raw.shape}.")
        if method == "transform":
            return raw
        return self._head(net.unpermute_outputs(raw), method)

    # -------------------------------------------------------------- helpers
    def _raw_forward(self, X):
        """Raw (packed-order) network outputs of ``X``: input of :meth:`output_head`."""
        X = self._check_input(X)  # raises NotFittedError first
        return self.network_.forward(X, unpermute=False)


# --------------------------------------------------------------------- checks
def _class_name(obj):
    """Full, preferably public, module-qualified name of ``type(obj)``."""
    cls = type(obj)
    module, name = cls.__module__, cls.__qualname__
    if module == "builtins":
        return name
    public = ".".join(p for p in module.split(".") if not p.startswith("_"))
    if public != module:
        mod = sys.modules.get(public)
        if mod is None or getattr(mod, name, None) is not cls:
            public = module
    return f"{public}.{name}"


def is_network(obj):
    """Whether ``obj`` is a skhepex network (implements :class:`NetworkMixin`).

    Parameters
    ----------
    obj : object
        Any object (an estimator or an instance of another type).

    Returns
    -------
    result : bool
        ``isinstance(obj, NetworkMixin)``; wrappers (``Pipeline``, ``HEPEx``,
        ``HEPredictor``) are not networks, see
        :func:`~skhepex.estimators.get_network`.
    """
    return isinstance(obj, NetworkMixin)


def _check_network(obj, fitted, outer=None):
    where = "" if outer is None or outer is obj else f" (found inside {_class_name(outer)})"
    if not is_network(obj):
        raise TypeError(
            f"{_class_name(obj)}{where} is not a skhepex network; tiles, pruning and "
            f"encrypted inference need {_SUPPORTED} (alone, last in a Pipeline, or inside "
            "an HEPEx); train one of those with activation='square' or 'poly'.")
    if fitted and not hasattr(obj, "network_"):
        if outer is None or outer is obj:
            msg = (f"This {type(obj).__name__} instance is not fitted yet; call 'fit' "
                   "before using it for tiles, pruning or encrypted inference.")
        else:
            msg = (f"This {type(outer).__name__} instance is not fitted yet (its "
                   f"{type(obj).__name__} network is unfitted); call 'fit' before using "
                   "it for tiles, pruning or encrypted inference.")
        raise NotFittedError(msg)
    return obj


def check_network(obj, *, fitted=True):
    """Check that ``obj`` is a (fitted) skhepex network.

    Parameters
    ----------
    obj : object
        The object to check. Wrappers are *not* unwrapped: use
        :func:`~skhepex.estimators.get_network` for a ``Pipeline``, ``HEPEx``
        or ``HEPredictor``.
    fitted : bool, default=True
        Also require ``obj`` to be fitted.

    Returns
    -------
    obj : NetworkMixin
        ``obj`` itself.

    Raises
    ------
    TypeError
        If ``obj`` is not a skhepex network (the message names its full class,
        e.g. ``sklearn.neural_network.MLPClassifier``, and the supported ones).
    sklearn.exceptions.NotFittedError
        If ``fitted`` and ``obj`` is not fitted.
    """
    return _check_network(obj, fitted)
