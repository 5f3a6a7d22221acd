"""Behaviour and acceptance tests of the NumPy network estimators."""

import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from skhepex import Autoencoder, CNNClassifier, MLPClassifier, MLPRegressor


def test_mlp_square_digits_accuracy(digits):
    X_train, X_test, y_train, y_test = digits
    clf = MLPClassifier(hidden_layer_sizes=(64,), activation="square", random_state=0)
    assert clf.fit(X_train, y_train).score(X_test, y_test) >= 0.95


def test_cnn_square_digits_accuracy(digits):
    X_train, X_test, y_train, y_test = digits
    cnn = CNNClassifier(activation="square", random_state=0)
    assert cnn.fit(X_train, y_train).score(X_test, y_test) >= 0.96


def test_autoencoder_square_digits_r2(digits):
    X_train, X_test, _, _ = digits
    ae = Autoencoder(hidden_layer_sizes=(32,), activation="square", random_state=0)
    assert ae.fit(X_train).score(X_test) >= 0.85


def test_denoising_autoencoder_lowers_mse(digits):
    X_train, X_test, _, _ = digits
    rng = np.random.RandomState(0)

    def noisy(A):
        return np.clip(A + rng.normal(0.0, 0.2, A.shape), 0.0, 1.0)

    # fresh noise for several copies of the training set, as usual for DAEs
    X_noisy = np.vstack([noisy(X_train) for _ in range(5)])
    X_clean = np.vstack([X_train] * 5)
    dae = Autoencoder(hidden_layer_sizes=(64,), activation="square", random_state=0)
    dae.fit(X_noisy, X_clean)
    N_test = noisy(X_test)
    mse_noisy = np.mean((N_test - X_test) ** 2)
    mse_denoised = np.mean((dae.predict(N_test) - X_test) ** 2)
    assert mse_denoised <= 0.6 * mse_noisy


def test_autoencoder_shapes_and_inverse(digits):
    X_train = digits[0][:300]
    ae = Autoencoder(hidden_layer_sizes=(128, 32, 128), max_iter=3, random_state=0).fit(X_train)
    sizes = [c.shape for c in ae.coefs_]
    assert sizes == [(64, 128), (128, 32), (32, 128), (128, 64)]
    code = ae.transform(X_train)
    assert code.shape == (300, 32)
    np.testing.assert_allclose(ae.inverse_transform(code), ae.predict(X_train), atol=1e-12)
    with pytest.raises(ValueError, match="codes of shape"):
        ae.inverse_transform(np.zeros((2, 5)))


def test_cnn_accepts_4d_and_2d(digits):
    X_train, X_test, y_train, _ = digits
    a = CNNClassifier(conv_channels=(2, 4), max_iter=3, random_state=0).fit(X_train, y_train)
    b = CNNClassifier(conv_channels=(2, 4), max_iter=3, random_state=0).fit(
        X_train.reshape(-1, 1, 8, 8), y_train)
    np.testing.assert_allclose(a.predict_proba(X_test),
                               b.predict_proba(X_test.reshape(-1, 1, 8, 8)))
    assert a.input_shape_ == (1, 8, 8)
    assert a.transform(X_test).shape == (len(X_test), 4 * 2 * 2)
    c = CNNClassifier(conv_channels=(2,), input_shape=(1, 8, 8), max_iter=2).fit(X_train, y_train)
    assert c.input_shape_ == (1, 8, 8)
    with pytest.raises(ValueError, match="input_shape"):
        CNNClassifier(input_shape=(1, 7, 7)).fit(X_train, y_train)
    with pytest.raises(ValueError, match="sample shape"):
        a.predict(X_test.reshape(-1, 1, 4, 16))


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor, Autoencoder, CNNClassifier])
def test_masked_weights_stay_exactly_zero(Est, digits, rng):
    X, _, y, _ = digits
    X, y = X[:200], y[:200]
    kw = dict(conv_channels=(2, 4)) if Est is CNNClassifier else dict(hidden_layer_sizes=(16,))
    est = Est(max_iter=2, random_state=0, **kw)
    fit_y = None if Est is Autoencoder else y
    est.fit(X, fit_y)
    for W, mask in zip(est.coefs_, est.masks_):
        mask[...] = rng.rand(*mask.shape) > 0.5
    est.network_.apply_masks()

    def check():
        for W, mask in zip(est.coefs_, est.masks_):
            assert np.all(W[~mask] == 0.0)
            assert np.any(W[mask] != 0.0)

    check()
    est.set_params(warm_start=True, max_iter=3).fit(X, fit_y)
    check()
    if Est is MLPClassifier or Est is CNNClassifier:
        est.partial_fit(X, y)
    else:
        est.partial_fit(X, fit_y)
    check()
    est.fine_tune(X, fit_y if fit_y is not None else X, max_iter=2)
    check()


def test_poly_activation_trainable(digits):
    X, _, y, _ = digits
    clf = MLPClassifier(hidden_layer_sizes=(16,), activation="poly", poly_trainable=True,
                        max_iter=5, random_state=0).fit(X, y)
    coefs = clf.network_.activations[0].coefs
    assert not np.allclose(coefs, (0.125, 0.5, 0.25))
    fixed = MLPClassifier(hidden_layer_sizes=(16,), activation="poly", poly_coefs=(0.1, 1, 0),
                          max_iter=5, random_state=0).fit(X, y)
    np.testing.assert_allclose(fixed.network_.activations[0].coefs, (0.1, 1, 0))


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor, Autoencoder, CNNClassifier])
def test_pickle_and_joblib_round_trip(Est, digits, tmp_path):
    X, X_test, y, _ = digits
    kw = dict(conv_channels=(2, 4)) if Est is CNNClassifier else dict(hidden_layer_sizes=(16,))
    est = Est(max_iter=3, random_state=0, **kw).fit(X[:300], None if Est is Autoencoder else y[:300])
    expected = est.predict(X_test)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(X_test), expected)
    joblib.dump(est, tmp_path / "m.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "m.joblib").predict(X_test), expected)
    # a clone is unfitted
    with pytest.raises(NotFittedError):
        clone(est).predict(X_test)


def test_bad_input_errors(digits):
    X, _, y, _ = digits
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2)
    with pytest.raises(NotFittedError):
        clf.predict(X)
    bad = X[:20].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(bad, y[:20])
    clf.fit(X[:50], y[:50])
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:5, :10])
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MLPClassifier(hidden_layer_sizes=(8, 0)).fit(X[:20], y[:20])
    with pytest.raises(ValueError, match="activation"):
        MLPClassifier(activation="softplus").fit(X[:20], y[:20])


def test_regressor_multi_output(rng):
    X = rng.rand(200, 3)
    Y = np.c_[X.sum(axis=1), X[:, 0] - X[:, 1]]
    reg = MLPRegressor(hidden_layer_sizes=(16,), activation="square", max_iter=300,
                       learning_rate_init=0.01, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (200, 2)
    assert reg.score(X, Y) > 0.9


def test_early_stopping_restores_best(digits):
    X, _, y, _ = digits
    clf = MLPClassifier(hidden_layer_sizes=(16,), early_stopping=True, max_iter=50,
                        random_state=0).fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)


def test_binary_decision_function(digits):
    X, _, y, _ = digits
    keep = y < 2
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(X[keep], y[keep])
    d = clf.decision_function(X[keep])
    assert d.ndim == 1
    np.testing.assert_array_equal(clf.predict(X[keep]), clf.classes_[(d > 0).astype(int)])
