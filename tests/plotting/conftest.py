"""Fixtures of the plotting tests: tiny fitted networks, figures closed after each test."""

import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits

from skhepex import MLPClassifier


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close("all")


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16, y[:300]


def _sparse_net(data, seed=0, sparsity=0.7):
    """A fitted 64-24-10 MLP with random weights zeroed (so some tiles are empty)."""
    X, y = data
    clf = MLPClassifier(hidden_layer_sizes=(24,), max_iter=3, random_state=seed).fit(X, y)
    rng = np.random.RandomState(seed)
    for layer in clf.network_.weight_layers:
        layer.W[rng.rand(*layer.W.shape) < sparsity] = 0.0
    return clf


@pytest.fixture(scope="module")
def sparse_net():
    """The factory ``sparse_net(data, seed=0, sparsity=0.7)`` of sparse fitted MLPs."""
    return _sparse_net


@pytest.fixture(scope="module")
def net(data):
    return _sparse_net(data)
