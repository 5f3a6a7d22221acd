"""The HE-PEx meta-estimator: dense training followed by pruning steps."""

import logging
import time

from sklearn.base import clone
from numbers import Integral, Real

from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import _BaseComposition
from sklearn.utils.validation import check_memory

from ..estimators import check_network, delegate_tags
from ..tiling import check_tile_shape
from .delegation import NetworkDelegationMixin
from .search import _is_passthrough, check_search, run_steps, search_budget, with_value
from .stages import apply_step, fit_dense, stage_record

__all__ = ["HEPEx"]

logger = logging.getLogger("skhepex")

class HEPEx(NetworkDelegationMixin, _BaseComposition):
    """Train a network densely, then prune it for HE with a chain of steps.

    HE-PEx (Aharoni et al., ESORICS 2023): under homomorphic encryption a
    weight tile costs one ciphertext multiply whether it holds one non-zero
    weight or all of them, so pruning pays only when whole tiles become empty.
    ``HEPEx`` trains a clone of ``estimator`` and applies ``steps`` in order
    (typically :class:`MagnitudePruner`, :class:`Permuter`,
    :class:`TilePruner`, :class:`Expander`), each receiving the previous
    fitted network, the training data and ``tile_shape``. At equal
    fine-tuning budget the chain that wins on average on the digits
    benchmarks (``benchmarks/pruning.py``) is ``[("tiles", TilePruner(...)),
    ("expand", Expander())]`` with the steps' defaults: the tile pruner
    permutes the hidden units for its budget before every round; magnitude
    pruning first costs accuracy at the same epochs. Like a
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
    tile_shape : tuple of int (t1, t2) or "auto", default=(8, 8)
        Tile shape of the HE packing, given to every step (and read by
        :func:`~skhepex.tile_report` and the HE predictor). ``"auto"``
        chooses it after dense training, before any step, with the HE cost
        model (:func:`skhepex.he.choose_tile_shape`, tabulated unit costs:
        deterministic) for requests of ``request_size`` samples, so pruning
        removes whole tiles of the packing the deployment will use. The
        shape is the fastest one *for the dense network*: small requests
        favour large tiles (one sample fills a ciphertext with weights),
        which pruning empties less often than small ones, and throughput
        favours ``(1, 1)`` tiles, where tile pruning is unstructured
        pruning. Pass an explicit shape to prune at another granularity.
    request_size : int or "auto", default="auto"
        Samples per encrypted request the deployment expects, used only with
        ``tile_shape="auto"``; ``"auto"`` means throughput (full
        ciphertexts).
    search : dict or None, default=None
        ``{"<step>__<param>": [values]}``, e.g.
        ``{"tiles__tile_sparsity": [0.5, 0.7, 0.8, 0.9, 0.95]}``: the
        pruning budget chosen automatically. ``validation_fraction`` of the
        training data is held out, the dense network is trained once on the
        rest, the steps run once per value, and the value with the fewest
        ciphertexts whose validation score is within ``tolerance`` of the
        dense network's is kept (``best_params_``); then the whole chain is
        fitted on all the data with it. A warning names the best-scoring
        value when none is within ``tolerance``.
    tolerance : float, default=0.025
        Relative validation-score degradation allowed by ``search``.
    validation_fraction : float in (0, 1), default=0.2
        Share of the training data ``search`` holds out (stratified for
        classifiers).
    random_state : int, RandomState instance or None, default=None
        Seed of the validation split of ``search``.
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
    best_params_ : dict
        The value ``search`` chose (only with ``search``).
    search_results_ : list of dict
        One record per searched value: ``value``, ``n_ciphertexts``,
        ``val_score``, ``dense_val_score``, ``within`` (only with ``search``).
    tile_shape_ : tuple of int (t1, t2)
        The tile shape the steps pruned for (``tile_shape``, or the one
        chosen when it is ``"auto"``).
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
        "tile_shape": [tuple, list, StrOptions({"auto"})],
        "request_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "search": [None, dict],
        "tolerance": [Interval(Real, 0, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
        "memory": [None, str, HasMethods(["cache"])],
        "verbose": ["verbose"],
    }

    def __init__(self, estimator, steps, *, tile_shape=(8, 8), request_size="auto",
                 search=None, tolerance=0.025, validation_fraction=0.2, random_state=None,
                 memory=None, verbose=0):
        self.estimator = estimator
        self.steps = steps
        self.tile_shape = tile_shape
        self.request_size = request_size
        self.search = search
        self.tolerance = tolerance
        self.validation_fraction = validation_fraction
        self.random_state = random_state
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
        tile_shape : tuple of int (t1, t2) or None
            ``tile_shape_`` once fitted, else ``tile_shape`` validated
            (``None`` while ``"auto"`` is not resolved yet).
        """
        if hasattr(self, "tile_shape_"):
            return self.tile_shape_
        return None if isinstance(self.tile_shape, str) else check_tile_shape(self.tile_shape)

    def _auto_tile_shape(self, net):
        """The cost model's tile shape for the dense ``net`` at ``request_size``."""
        from ..he import choose_tile_shape  # HE planning: only needed for "auto"
        from ..he.planner import MAX_AUTO_MEMORY

        batch = "auto" if self.request_size == "auto" else int(self.request_size)
        shape, _ = choose_tile_shape(net, batch_size=batch, measure=False,
                                     max_memory=MAX_AUTO_MEMORY)   # same on every machine
        if self.verbose:
            logger.info("[HEPEx] tile shape %s for requests of %s samples", shape, batch)
        return tuple(int(t) for t in shape)

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
        searched = check_search(self.search, self.steps)
        auto = isinstance(self.tile_shape, str)
        tile_shape = None if auto else check_tile_shape(self.tile_shape)
        check_network(self.estimator, fitted=False)  # before any training
        memory = check_memory(self.memory)
        cached_fit_dense = memory.cache(fit_dense)
        cached_apply_step = memory.cache(apply_step)
        steps = self.steps
        for attr in ("best_params_", "search_results_"):
            self.__dict__.pop(attr, None)           # from an earlier fit with search
        if searched is not None:
            key, values = searched
            best, self.search_results_, tile_shape = search_budget(
                self, X, y, key, values, cached_fit_dense, cached_apply_step,
                lambda net: self._auto_tile_shape(net) if auto else tile_shape)
            auto = False            # prune for the shape the budget was chosen at
            self.best_params_ = {key: best}
            steps = with_value(self.steps, key, best)
        t0 = time.time()
        net, rec = cached_fit_dense(clone(self.estimator), X, y, tile_shape)
        check_network(net)
        self._log("dense training", t0)
        if auto:
            tile_shape = self._auto_tile_shape(net)
            rec = stage_record("dense", net, X, y, tile_shape)
        self.tile_shape_ = tile_shape
        self.dense_estimator_ = net
        net, steps_, records = run_steps(
            net, steps, X, y, tile_shape, cached_apply_step,
            lambda name, seconds: self._log(f"step {name!r}", time.time() - seconds))
        history = [rec] + records
        self.estimator_ = net
        self.steps_ = steps_
        self.history_ = history
        self.n_ciphertexts_dense_ = history[0]["n_nonzero_tiles"]
        self.n_ciphertexts_ = history[-1]["n_nonzero_tiles"]
        return self

    def __sklearn_tags__(self):
        return delegate_tags(super().__sklearn_tags__(), self.estimator)
