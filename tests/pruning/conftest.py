import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning


@pytest.fixture(scope="session")
def digits():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    idx = np.random.RandomState(0).permutation(len(X))[:600]
    return X[idx], y[idx]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield
