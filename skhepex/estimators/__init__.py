"""Network estimators (MLPs, autoencoder, CNN) and the network contract.

Every network implements :class:`NetworkMixin`, the public contract that
pruning, tiling and encrypted inference rely on
(:mod:`skhepex.estimators.contract`); :func:`get_network` and
:func:`get_tile_shape` find a network (and its tile shape) inside a
``Pipeline`` or a wrapper, and wrappers report the wrapped network's tags with
:func:`delegate_tags` (:mod:`skhepex.estimators.wrappers`).
"""

from .autoencoder import Autoencoder
from .cnn import CNNClassifier
from .contract import NetworkMixin, check_network, is_network
from .mlp import MLPClassifier
from .regressor import MLPRegressor
from .wrappers import delegate_tags, get_network, get_tile_shape

__all__ = ["Autoencoder", "CNNClassifier", "MLPClassifier", "MLPRegressor",
           "NetworkMixin", "check_network", "delegate_tags", "get_network",
           "get_tile_shape", "is_network"]
