"""Network estimators: MLPs, autoencoder and CNN."""

from .autoencoder import Autoencoder
from .cnn import CNNClassifier
from .mlp import MLPClassifier, MLPRegressor

__all__ = ["Autoencoder", "CNNClassifier", "MLPClassifier", "MLPRegressor"]
