"""Fixtures of the ``skhepex serve`` tests: a tiny model, its package, a running server."""

import pytest
from serve_helpers import running_server
from sklearn.datasets import load_digits


@pytest.fixture(scope="session")
def model(tmp_path_factory):
    """A tiny digits MLP, its HEPredictor (keys) and its server package on disk."""
    from skhepex import MLPClassifier
    from skhepex.he import HEPredictor

    X, y = load_digits(return_X_y=True)
    X = X / 16
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
    he = HEPredictor(clf, prefit=True, tile_shape=(8, 8)).fit()
    package = tmp_path_factory.mktemp("serve") / "server.pkg"
    he.save_server(package)
    return dict(X=X, clf=clf, he=he, package=package)


@pytest.fixture(scope="session")
def served(model):
    """``skhepex serve`` of the package in a subprocess, on a free loopback port."""
    with running_server(model["package"], "--max-body-mb", "16") as srv:
        yield srv
