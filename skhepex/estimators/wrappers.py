"""The wrapper protocol: finding a network (and its tile shape) inside wrappers.

Tiling, pruning and encrypted inference accept a bare network, a
:class:`~sklearn.pipeline.Pipeline` ending in one, or a meta-estimator
wrapping one (``HEPEx``, ``HEPredictor``, or any third-party class). They
unwrap it with :func:`get_network` and :func:`get_tile_shape`, and wrappers
report the wrapped network's tags with :func:`delegate_tags`.

The protocol
------------
A meta-estimator wrapping a network takes part in :func:`get_network` and
:func:`get_tile_shape` by defining two methods, in the spirit of
scikit-learn's ``__sklearn_tags__``:

``__skhepex_network__(self)``
    Return the wrapped estimator: the fitted inner estimator once fitted,
    the unfitted one before (so that ``get_network(obj, fitted=False)`` can
    inspect it). The result may itself be a wrapper or a ``Pipeline``;
    :func:`get_network` follows it.
``__skhepex_tile_shape__(self)``
    Return the ``(t1, t2)`` tile shape the wrapped network was pruned (or
    packed) for, or ``None`` when the wrapper carries none.

A scikit-learn :class:`~sklearn.pipeline.Pipeline` needs no protocol: its last
step is followed.
"""

from sklearn.pipeline import Pipeline
from sklearn.utils import get_tags

from .contract import _check_network, is_network

__all__ = ["get_network", "get_tile_shape", "delegate_tags"]

#: Longest chain of wrappers :func:`get_network` follows (guards against cycles).
_MAX_DEPTH = 32


def _has_protocol(obj, name):
    # looked up on the type, as Python looks up special methods
    return callable(getattr(type(obj), name, None))


def get_network(estimator, *, fitted=True):
    """The skhepex network inside ``estimator``.

    Parameters
    ----------
    estimator : object
        A skhepex network; a :class:`~sklearn.pipeline.Pipeline` (its last
        step is followed); or a wrapper defining ``__skhepex_network__()``
        (``HEPEx``, ``HEPredictor``; its result is followed). Wrappers may
        nest.
    fitted : bool, default=True
        Require the network to be fitted.

    Returns
    -------
    network : NetworkMixin
        The innermost network.

    Raises
    ------
    TypeError
        If no skhepex network is found (see :func:`check_network`).
    sklearn.exceptions.NotFittedError
        If ``fitted`` and the network (or its wrapper) is not fitted.
    """
    obj = estimator
    for _ in range(_MAX_DEPTH):
        if is_network(obj):
            break
        if isinstance(obj, Pipeline):
            obj = obj.steps[-1][1]
        elif _has_protocol(obj, "__skhepex_network__"):
            obj = obj.__skhepex_network__()
        else:
            break
    return _check_network(obj, fitted, outer=estimator)


def get_tile_shape(estimator):
    """The tile shape ``estimator`` carries (was pruned or packed for), if any.

    Parameters
    ----------
    estimator : object
        A network, a :class:`~sklearn.pipeline.Pipeline` (its last step is
        followed), or a wrapper defining ``__skhepex_tile_shape__()``.

    Returns
    -------
    tile_shape : tuple of int (t1, t2) or None
        The value of ``__skhepex_tile_shape__()``, validated by
        :func:`skhepex.tiling.check_tile_shape`; ``None`` for a bare network
        or any object without the protocol.
    """
    obj = estimator
    for _ in range(_MAX_DEPTH):
        if isinstance(obj, Pipeline):
            obj = obj.steps[-1][1]
            continue
        if _has_protocol(obj, "__skhepex_tile_shape__"):
            shape = obj.__skhepex_tile_shape__()
            if shape is None:
                return None
            from ..tiling import check_tile_shape  # tiling imports this module

            return check_tile_shape(shape)
        return None
    return None


def delegate_tags(tags, estimator):
    """Copy the type, target and input tags of ``estimator`` onto ``tags``.

    A wrapper (``HEPEx``, ``HEPredictor``) behaves as the network it wraps
    (classifier, regressor or transformer), so scikit-learn must see that
    network's tags: call this from the wrapper's ``__sklearn_tags__``.

    Parameters
    ----------
    tags : sklearn.utils.Tags
        The meta-estimator's tags (from ``super().__sklearn_tags__()``).
    estimator : estimator
        The wrapped (possibly unfitted) estimator.

    Returns
    -------
    tags : sklearn.utils.Tags
        ``tags``, updated in place.
    """
    sub = get_tags(estimator)
    tags.estimator_type = sub.estimator_type
    tags.classifier_tags = sub.classifier_tags
    tags.regressor_tags = sub.regressor_tags
    tags.transformer_tags = sub.transformer_tags
    tags.target_tags = sub.target_tags
    tags.input_tags = sub.input_tags
    return tags
