"""Quality of the default training: initialisation, learning rate, batch size, stopping.

The figures are the issue's targets ("defaults that train as well as
scikit-learn's per epoch"); every fit uses a fixed seed.
"""

import contextlib
import warnings

import numpy as np
from sklearn.datasets import load_digits, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_regressors_train

from skhepex import Autoencoder, MLPClassifier, MLPRegressor


@contextlib.contextmanager
def _converges():
    """Fail on a ConvergenceWarning: training must stop on ``tol`` within ``max_iter``."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        yield


def test_wine_cross_validated_accuracy():
    # scikit-learn's MLPClassifier (relu) scores 0.949 here; skhepex's before: 0.922
    X, y = load_wine(return_X_y=True)
    model = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,),
                                                          random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert cross_val_score(model, X, y, cv=5).mean() >= 0.95  # measured 0.978


def test_denoising_autoencoder_64_32_64_removes_noise():
    X = load_digits().data / 16
    X_train, X_test = train_test_split(X, random_state=0)
    rng = np.random.RandomState(0)

    def noisy(A):
        return np.clip(A + rng.normal(0.0, 0.2, A.shape), 0.0, 1.0)

    X_noisy = noisy(X_train)
    dae = Autoencoder(hidden_layer_sizes=(32,), random_state=0)
    with _converges():
        dae.fit(X_noisy, X_train)
    assert dae.n_iter_ < dae.max_iter
    N_test = noisy(X_test)
    removed = 1 - np.mean((dae.predict(N_test) - X_test) ** 2) / np.mean((N_test - X_test) ** 2)
    assert removed >= 0.40  # measured 0.418 (before: 0.365); a linear ridge denoiser: 0.48


def test_check_regressors_train_in_20_epochs():
    # scikit-learn's MLPRegressor(max_iter=20) passes this check (R^2 0.68)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_regressors_train("MLPRegressor", MLPRegressor(max_iter=20))


def test_autoencoder_converges_by_default(digits):
    X_train = digits[0]
    with _converges():
        ae = Autoencoder(hidden_layer_sizes=(32,), random_state=0).fit(X_train)
    assert ae.n_iter_ < ae.max_iter


def test_readme_classifier_converges_by_default(digits):
    X_train, X_test, y_train, y_test = digits
    with _converges():
        clf = MLPClassifier(hidden_layer_sizes=(64,), random_state=0).fit(X_train, y_train)
    assert clf.n_iter_ < clf.max_iter
    assert clf.score(X_test, y_test) >= 0.95


def test_initialisation_adapts_to_the_input_scale(digits):
    # the square activations' inputs are calibrated on the training data, so raw
    # (0..16) and min-max scaled digits start from the same function
    X, _, y, _ = digits
    first = []
    for scale in (1.0, 16.0):
        clf = MLPClassifier(hidden_layer_sizes=(32,), learning_rate_init=1e-12, max_iter=1,
                            random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X * scale, y)
        z = (X * scale) @ clf.coefs_[0] + clf.intercepts_[0]
        np.testing.assert_allclose(z.std(), 0.35, rtol=0.05)
        first.append(clf.coefs_[0] * scale)
    np.testing.assert_allclose(first[0], first[1], rtol=1e-6, atol=1e-12)


def test_auto_batch_size_gives_four_updates_per_epoch(rng):
    X, y = rng.rand(40, 3), rng.rand(40)
    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
    assert reg._optimizer.t == 4
    reg.set_params(batch_size=40).fit(X, y)
    assert reg._optimizer.t == 1


def test_early_stopping_waits_for_a_plateau(digits):
    X, _, y, _ = digits
    clf = MLPClassifier(hidden_layer_sizes=(16,), early_stopping=True, max_iter=200,
                        random_state=0).fit(X, y)
    scores = np.asarray(clf.validation_scores_)
    # training goes on while the validation score improves (it used to stop
    # after n_iter_no_change + 1 epochs whatever the scores)
    assert clf.n_iter_ > clf.n_iter_no_change + 1
    # and stops only after n_iter_no_change + 1 epochs without a gain of tol
    best_before = np.maximum.accumulate(np.r_[-np.inf, scores[:-1]])
    stalled = scores < best_before + clf.tol
    assert np.all(stalled[-(clf.n_iter_no_change + 1):])
    assert clf.best_validation_score_ == scores.max()
