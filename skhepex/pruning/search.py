"""The pruning budget chosen on a validation split inside :class:`~skhepex.pruning.HEPEx`.

``HEPEx(search={"tiles__tile_sparsity": [...]})`` holds out part of the
training data, trains the dense network once on the rest, runs the steps
once per value of the searched parameter from that dense network, and keeps
the value with the fewest ciphertexts whose validation score is within
``tolerance`` of the dense network's (the rule of
:func:`~skhepex.pruning.fewest_ciphertexts_within`, without a grid search
refitting the dense network per candidate).  The test data is never seen.
"""
import logging
import time
import warnings
from collections.abc import Iterable

from sklearn.base import clone, is_classifier
from sklearn.model_selection import train_test_split

from ..tiling import TileLayout

__all__ = ["check_search", "run_steps", "search_budget", "with_value"]

logger = logging.getLogger("skhepex")


def _is_passthrough(step):
    return step is None or (isinstance(step, str) and step == "passthrough")


def with_value(steps, key, value):
    """``steps`` with the step parameter ``key`` (``"<step>__<param>"``) set to ``value``.

    Parameters
    ----------
    steps : list of (str, step)
        HEPEx steps (never modified: the changed step is a clone).
    key : str
        ``"<step>__<param>"``.
    value : object
        The parameter's value.

    Returns
    -------
    steps : list of (str, step)
    """
    name, param = key.split("__", 1)
    return [(n, clone(s).set_params(**{param: value}) if n == name else s) for n, s in steps]


def check_search(search, steps):
    """Validate ``HEPEx.search``: one ``<step>__<param>`` and a non-empty list of values.

    Parameters
    ----------
    search : dict or None
        The ``search`` parameter.
    steps : list of (str, step)
        The HEPEx steps.

    Returns
    -------
    item : (str, list) or None
        The searched parameter and its values.
    """
    if search is None:
        return None
    if len(search) != 1:
        raise ValueError(f"search takes one parameter, '<step>__<param>': [values]; got "
                         f"{sorted(search)}")
    (key, values), = search.items()
    step = key.split("__", 1)[0]
    active = [n for n, s in steps if not _is_passthrough(s)]
    if "__" not in key or step not in active:
        raise ValueError(f"search key {key!r} must be '<step>__<param>' with a step among "
                         f"{active} (not passthrough)")
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ValueError(f"search[{key!r}] must be a list of values; got {values!r}")
    values = list(values)
    if not values:
        raise ValueError(f"search[{key!r}] is empty")
    return key, values


def run_steps(net, steps, X, y, tile_shape, apply_step, log=None):
    """Apply ``steps`` to the fitted ``net`` in order (passthrough steps skipped).

    Parameters
    ----------
    net : estimator
        Fitted network (not modified).
    steps : list of (str, step)
        Unfitted steps (cloned here) or ``"passthrough"`` / ``None``.
    X, y : array-like
        Data the steps fine-tune on.
    tile_shape : (int, int)
        Tile shape the steps prune for.
    apply_step : callable
        :func:`~skhepex.pruning.stages.apply_step`, possibly cached.
    log : callable, optional
        ``log(name, seconds)`` after every step.

    Returns
    -------
    net : estimator
        The final network.
    steps_ : list of (str, step)
        Fitted copies of the steps.
    records : list of dict
        One history record per applied step.
    """
    steps_, records = [], []
    for name, step in steps:
        if _is_passthrough(step):
            steps_.append((name, step))
            continue
        t0 = time.time()
        net, fitted, rec = apply_step(net, clone(step), name, X, y, tile_shape)
        if log is not None:
            log(name, time.time() - t0)
        steps_.append((name, fitted))
        records.append(rec)
    return net, steps_, records


def search_budget(hepex, X, y, key, values, fit_dense, apply_step, tile_shape_for):
    """Choose ``key``'s value on a validation split (see the module docstring).

    Parameters
    ----------
    hepex : HEPEx
        The meta-estimator (its ``estimator``, ``steps``, ``tolerance``,
        ``validation_fraction`` and ``random_state`` are read).
    X, y : array-like
        Training data; ``validation_fraction`` of it is held out.
    key : str
        ``"<step>__<param>"``.
    values : list
        Candidate values.
    fit_dense, apply_step : callable
        The (possibly cached) stage functions of ``HEPEx.fit``.
    tile_shape_for : callable
        ``tile_shape_for(dense_network) -> (t1, t2)``.

    Returns
    -------
    best : object
        The chosen value.
    results : list of dict
        One record per value: ``value``, ``n_ciphertexts``, ``val_score``
        and ``within`` (within ``tolerance`` of the dense validation score).
    tile_shape : (int, int)
        The tile shape the values were compared at.
    """
    net = hepex.estimator
    X_fit, X_val, y_fit, y_val = _split(net, X, y, hepex.validation_fraction,
                                        hepex.random_state)
    dense, _ = fit_dense(clone(net), X_fit, y_fit, None)
    dense_score = float(dense.score(X_val, y_val))
    floor = dense_score - hepex.tolerance * abs(dense_score)
    tile_shape = tile_shape_for(dense)
    results = []
    for value in values:
        pruned, _, _ = run_steps(dense, with_value(hepex.steps, key, value), X_fit, y_fit,
                                 tile_shape, apply_step)
        score = float(pruned.score(X_val, y_val))
        tiles = TileLayout(pruned, tile_shape).n_nonzero_tiles
        results.append(dict(value=value, n_ciphertexts=tiles, val_score=score,
                            dense_val_score=dense_score, within=score >= floor))
        if hepex.verbose:
            logger.info("[HEPEx] search %s=%r: %s ciphertexts, validation score %.4f "
                        "(dense %.4f)", key, value, tiles, score, dense_score)
    within = [r for r in results if r["within"]]
    if not within:
        best = max(results, key=lambda r: r["val_score"])
        warnings.warn(f"no value of {key} keeps the validation score within "
                      f"{hepex.tolerance:g} of the dense network's ({dense_score:.4f}); "
                      f"using the best-scoring one, {best['value']!r}", UserWarning)
    else:
        best = min(within, key=lambda r: (r["n_ciphertexts"], -r["val_score"]))
    return best["value"], results, tile_shape


def _split(net, X, y, fraction, random_state):
    stratify = y if (y is not None and is_classifier(net)) else None
    if y is None:
        X_fit, X_val = train_test_split(X, test_size=fraction, random_state=random_state)
        return X_fit, X_val, None, None
    return train_test_split(X, y, test_size=fraction, random_state=random_state,
                            stratify=stratify)
