"""Network estimators (MLPs, autoencoder, CNN) and the network contract.

Every network implements :class:`NetworkMixin`, the public contract that
pruning, tiling and encrypted inference rely on; :func:`get_network` and
:func:`get_tile_shape` find a network (and its tile shape) inside a
``Pipeline`` or a wrapper (see :mod:`skhepex.estimators.contract`).
"""

from .autoencoder import Autoencoder
from .cnn import CNNClassifier
from .contract import NetworkMixin, check_network, get_network, get_tile_shape, is_network
from .mlp import MLPClassifier, MLPRegressor

__all__ = ["Autoencoder", "CNNClassifier", "MLPClassifier", "MLPRegressor",
           "NetworkMixin", "check_network", "get_network", "get_tile_shape", "is_network"]
