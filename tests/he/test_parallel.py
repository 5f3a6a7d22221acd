"""Evaluation in worker processes: joblib loky and a dask.distributed LocalCluster."""

import numpy as np
import pytest
from he_stages import fit_digits_mlp

from skhepex.he import HEPredictor
from skhepex.he.parallel import evaluate_serialized, package_array

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def fitted(digits):
    X_test = digits[1]
    clf = fit_digits_mlp(digits, (8,), 10)
    he = HEPredictor(clf, prefit=True, tile_shape=(8, 8)).fit()
    X = np.vstack([X_test, X_test])[:64 * 3 + 5]        # 4 ciphertext batches
    return clf, he, X


def test_worker_function_caches_the_package(fitted):
    clf, he, X = fitted
    pkg, pkg_id = package_array(he.server_)
    assert pkg.dtype == np.uint8 and pkg_id.startswith(he.server_.plan_id)
    res = evaluate_serialized(pkg, pkg_id, he.encrypt(X[:10]).serialize())
    np.testing.assert_allclose(he.decrypt(res), clf.decision_function(X[:10]), atol=1e-3)
    from skhepex.he import parallel
    assert list(parallel._SERVERS) == [pkg_id]


def test_loky_processes_match_one_process(fitted):
    clf, he, X = fitted
    one = he.decision_function(X)
    he.set_params(n_jobs=2)
    try:
        two = he.decision_function(X)
        rep = he.measure(X)
    finally:
        he.set_params(n_jobs=None)
    np.testing.assert_allclose(two, one, atol=1e-6)
    np.testing.assert_allclose(two, clf.decision_function(X), atol=1e-3)
    assert rep.measured["n_batches"] == 4 and rep.measured["n_samples"] == X.shape[0]


def test_dask_local_cluster_matches_one_process(fitted):
    distributed = pytest.importorskip("dask.distributed")
    import joblib
    clf, he, X = fitted
    one = he.predict(X)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        with joblib.parallel_config(backend="dask"):
            got = he.predict(X)
    np.testing.assert_array_equal(got, one)
    np.testing.assert_array_equal(got, clf.predict(X))
