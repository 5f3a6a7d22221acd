"""Shared fixtures: the embedded digits data, MinMax-scaled and split."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler


@pytest.fixture(scope="session")
def digits():
    """Digits split as in the acceptance criteria: 25% held out, stratified, seed 0."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0)
    scaler = MinMaxScaler().fit(X_train)
    return (scaler.transform(X_train), scaler.transform(X_test), y_train, y_test)


@pytest.fixture
def rng():
    """A fresh seeded random generator."""
    return np.random.RandomState(0)
