"""NumPy network core shared by every skhepex estimator."""

from .activations import ACTIVATIONS, POLYNOMIAL_ACTIVATIONS, Activation
from .layers import AvgPool2D, Conv2D, Dense, Flatten
from .network import LinearStage, Network

__all__ = ["ACTIVATIONS", "POLYNOMIAL_ACTIVATIONS", "Activation", "AvgPool2D", "Conv2D",
           "Dense", "Flatten", "LinearStage", "Network"]
