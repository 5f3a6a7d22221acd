"""The public network contract (skhepex.estimators.contract) on every network."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from skhepex.estimators import (Autoencoder, CNNClassifier, MLPClassifier, MLPRegressor,
                                NetworkMixin, check_network, get_network, get_tile_shape,
                                is_network)
from skhepex.nn.activations import ACTIVATIONS, POLYNOMIAL_ACTIVATIONS, Activation

CLASSIFIER_METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function",
                      "transform")


def _fit(kind, digits):
    X, _, y, _ = digits
    X, y = X[:240], y[:240]
    if kind == "clf":
        est = MLPClassifier(hidden_layer_sizes=(12, 8), max_iter=4, random_state=0).fit(X, y)
        return est, X, y, CLASSIFIER_METHODS
    if kind == "binary":
        keep = y < 2
        est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=4, random_state=0)
        return est.fit(X[keep], y[keep]), X[keep], y[keep], CLASSIFIER_METHODS
    if kind == "reg":
        t = X[:, :5].sum(axis=1)
        est = MLPRegressor(hidden_layer_sizes=(8,), max_iter=4, random_state=0).fit(X, t)
        return est, X, t, ("predict", "transform")
    if kind == "reg2":
        T = np.c_[X[:, :5].sum(axis=1), X[:, 5]]
        est = MLPRegressor(hidden_layer_sizes=(8,), max_iter=4, random_state=0).fit(X, T)
        return est, X, T, ("predict", "transform")
    if kind == "ae":
        est = Autoencoder(hidden_layer_sizes=(24, 8, 24), max_iter=4, random_state=0).fit(X)
        return est, X, None, ("predict", "transform")
    est = CNNClassifier(conv_channels=(2, 4), hidden_layer_sizes=(6,), max_iter=2,
                        random_state=0).fit(X, y)
    return est, X, y, CLASSIFIER_METHODS


KINDS = ["clf", "binary", "reg", "reg2", "ae", "cnn"]


def _packed_forward(est, X, n_stages=None):
    """Plain evaluation of the packed stages: what encrypted inference computes."""
    Z = est.encode_input(X)
    stages = est.network_.stages()
    for st in stages[:n_stages]:
        Z = Z @ st.matrix().T + st.bias()
        if st.activation is not None:
            Z = st.activation.forward(Z)
    return Z


def _permute(est, rng):
    """Permute inputs (dense first layer), outputs and a hidden layer, in place."""
    net = est.network_
    wl = net.weight_layers
    in_perm = None
    if wl[0].kind == "dense":
        in_perm = rng.permutation(wl[0].W.shape[0])
    out_perm = rng.permutation(wl[-1].W.shape[1])
    net.permute_io(input_perm=in_perm, output_perm=out_perm)
    n_units = wl[0].W.shape[1] if wl[0].kind == "dense" else wl[0].W.shape[0]
    net.permute_hidden(0, rng.permutation(n_units))
    assert net.output_perm is not None
    return in_perm


def _check_heads(est, X, methods):
    raw = _packed_forward(est, X)
    for m in methods:
        if m == "transform":
            got = est.output_head(_packed_forward(est, X, est.n_transform_stages_), m)
        else:
            got = est.output_head(raw, m)
        expected = getattr(est, m)(X)
        assert got.shape == expected.shape, m
        if m == "predict" and got.dtype.kind not in "fc":
            np.testing.assert_array_equal(got, expected)
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, err_msg=m)


@pytest.mark.parametrize("kind", KINDS)
def test_output_head_reproduces_estimator(kind, digits, rng):
    est, X, _, methods = _fit(kind, digits)
    assert is_network(est) and isinstance(est, NetworkMixin)
    assert check_network(est) is est
    _check_heads(est, X, methods)
    before = {m: getattr(est, m)(X) for m in methods if m != "transform"}
    in_perm = _permute(est, rng)
    # the permutations are function-preserving...
    for m, value in before.items():
        np.testing.assert_allclose(getattr(est, m)(X), value, rtol=1e-9, atol=1e-9)
    # ... and the packed stages + output_head still reproduce every method
    _check_heads(est, X, methods)
    if in_perm is not None:
        np.testing.assert_array_equal(est.encode_input(X), X[:, est.network_.input_perm])


@pytest.mark.parametrize("kind", KINDS)
def test_encode_input(kind, digits):
    est, X, _, _ = _fit(kind, digits)
    Z = est.encode_input(X[:5].tolist())
    assert Z.dtype == np.float64 and Z.shape == (5, X.shape[1])
    np.testing.assert_array_equal(Z, X[:5])
    bad = X[:5].copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError):
        est.encode_input(bad)
    with pytest.raises(ValueError, match="features"):
        est.encode_input(X[:5, :10])
    with pytest.raises(NotFittedError):
        type(est)().encode_input(X[:5])


def test_encode_input_cnn_4d(digits):
    est, X, _, _ = _fit("cnn", digits)
    np.testing.assert_array_equal(est.encode_input(X[:4].reshape(-1, 1, 8, 8)), X[:4])
    with pytest.raises(ValueError, match="sample shape"):
        est.encode_input(X[:4].reshape(-1, 1, 4, 16))


def test_stage_counts(digits):
    clf, *_ = _fit("clf", digits)
    assert (clf.n_stages_, clf.n_transform_stages_) == (3, 2)
    ae, *_ = _fit("ae", digits)
    assert (ae.n_stages_, ae.n_transform_stages_) == (4, 2)
    assert ae.n_transform_stages_ == ae.code_layer_ + 1
    cnn, *_ = _fit("cnn", digits)
    assert (cnn.n_stages_, cnn.n_transform_stages_) == (4, 3)
    assert not hasattr(MLPClassifier(), "n_stages_")
    with pytest.raises(NotFittedError):
        MLPClassifier().n_transform_stages_


def test_output_head_errors(digits):
    reg, X, _, _ = _fit("reg", digits)
    raw = _packed_forward(reg, X[:3])
    for m in ("predict_proba", "decision_function", "inverse_transform", "fit"):
        with pytest.raises(ValueError, match="offers no output"):
            reg.output_head(raw, m)
    with pytest.raises(ValueError, match="shape"):
        reg.output_head(raw.ravel())
    with pytest.raises(ValueError, match="shape"):
        reg.output_head(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="shape"):
        reg.output_head(raw, "transform")  # transform takes hidden outputs
    with pytest.raises(NotFittedError):
        MLPRegressor().output_head(raw)
    # empty batches are allowed (e.g. no samples decrypted)
    clf, *_ = _fit("clf", digits)
    assert clf.output_head(np.zeros((0, 10)), "predict").shape == (0,)


@pytest.mark.parametrize("kind", KINDS)
def test_training_targets_and_loss_gradient(kind, digits, rng):
    est, X, y, _ = _fit(kind, digits)
    _permute(est, rng)
    X_net, T = est.training_targets(X, y)
    np.testing.assert_array_equal(X_net, X)  # original order: forward permutes itself
    assert T.shape == (X.shape[0], est.network_.shapes()[-1][0])
    out = est.network_.forward(X_net, train=True)
    loss, grad = est.loss_gradient(out, T)
    assert np.isfinite(loss) and grad.shape == out.shape
    est.network_.backward(grad)
    assert all(np.all(np.isfinite(g)) for g in est.network_.grads())
    est.network_.clear_cache()
    if kind in ("clf", "binary", "cnn"):
        np.testing.assert_array_equal(est.classes_[T.argmax(axis=1)], y)
        # a column vector of labels is accepted, as fit accepts it
        np.testing.assert_array_equal(est.training_targets(X, y.reshape(-1, 1))[1], T)
        with pytest.raises(ValueError, match="y"):
            est.training_targets(X, None)
    elif kind == "ae":
        np.testing.assert_array_equal(T, X)
        np.testing.assert_array_equal(est.training_targets(X, 2 * X)[1], 2 * X)
    else:
        np.testing.assert_array_equal(T, y.reshape(len(y), -1))


@pytest.mark.parametrize("kind", ["clf", "reg", "ae", "cnn"])
def test_fine_tune_keeps_masks(kind, digits, rng):
    est, X, y, _ = _fit(kind, digits)
    for mask in est.masks_:
        mask[...] = rng.rand(*mask.shape) > 0.5
    est.network_.apply_masks()
    masks = [m.copy() for m in est.masks_]
    before = [W.copy() for W in est.coefs_]
    assert est.fine_tune(X, y, max_iter=0) is est
    for W, W0 in zip(est.coefs_, before):
        np.testing.assert_array_equal(W, W0)
    n_iter = est.n_iter_
    with _no_convergence_warning():
        assert est.fine_tune(X, y, max_iter=2, random_state=0) is est
    assert est.n_iter_ == n_iter + 2
    assert any(not np.array_equal(W, W0) for W, W0 in zip(est.coefs_, before))
    for W, mask, m0 in zip(est.coefs_, est.masks_, masks):
        np.testing.assert_array_equal(mask, m0)
        assert np.all(W[~mask] == 0.0)
    with pytest.raises(TypeError):
        est.fine_tune(X, y, 2)  # max_iter is keyword-only
    with pytest.raises(NotFittedError):
        type(est)().fine_tune(X, y, max_iter=1)


class _no_convergence_warning:
    """Fail if a ConvergenceWarning escapes (fine_tune suppresses it)."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings(record=True)
        self._log = self._cm.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        from sklearn.exceptions import ConvergenceWarning

        self._cm.__exit__(*exc)
        assert not [w for w in self._log if issubclass(w.category, ConvergenceWarning)]
        return False


def test_fine_tune_is_reproducible(digits):
    a, X, y, _ = _fit("clf", digits)
    b, _, _, _ = _fit("clf", digits)
    a.fine_tune(X, y, max_iter=2, random_state=3)
    b.fine_tune(X, y, max_iter=2, random_state=3)
    for Wa, Wb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(Wa, Wb)


# ------------------------------------------------------------ check / get
def test_check_network_foreign_estimator():
    with pytest.raises(TypeError) as info:
        check_network(SkMLPClassifier())
    msg = str(info.value)
    assert "sklearn.neural_network.MLPClassifier is not a skhepex network" in msg
    for name in ("skhepex.MLPClassifier", "skhepex.MLPRegressor", "skhepex.Autoencoder",
                 "skhepex.CNNClassifier", "Pipeline", "HEPEx", "'square'"):
        assert name in msg
    with pytest.raises(TypeError, match="not a skhepex network"):
        check_network("passthrough", fitted=False)
    assert not is_network(SkMLPClassifier())


def test_check_network_fitted():
    clf = MLPClassifier()
    with pytest.raises(NotFittedError, match="MLPClassifier"):
        check_network(clf)
    assert check_network(clf, fitted=False) is clf


class _Wrapper:
    def __init__(self, inner, tile_shape=None):
        self.inner = inner
        self.tile_shape = tile_shape

    def __skhepex_network__(self):
        return self.inner

    def __skhepex_tile_shape__(self):
        return self.tile_shape


def test_get_network(digits):
    clf, X, y, _ = _fit("clf", digits)
    assert get_network(clf) is clf
    pipe = make_pipeline(MinMaxScaler(), clf)
    assert get_network(pipe) is clf
    assert get_network(_Wrapper(pipe)) is clf
    assert get_network(make_pipeline(MinMaxScaler(), _Wrapper(_Wrapper(clf)))) is clf
    # unfitted networks: found with fitted=False, refused otherwise (naming the wrapper)
    raw = MLPClassifier()
    assert get_network(_Wrapper(raw), fitted=False) is raw
    with pytest.raises(NotFittedError, match="_Wrapper.*MLPClassifier"):
        get_network(_Wrapper(raw))
    with pytest.raises(TypeError, match="skhepex.MLPClassifier") as info:
        get_network(make_pipeline(MinMaxScaler(), SkMLPClassifier()), fitted=False)
    assert "Pipeline" in str(info.value)
    with pytest.raises(TypeError, match="not a skhepex network"):
        get_network(_Wrapper(None))
    # a wrapper pointing at itself does not loop forever
    loop = _Wrapper(None)
    loop.inner = loop
    with pytest.raises(TypeError, match="not a skhepex network"):
        get_network(loop)


def test_get_tile_shape(digits):
    clf, *_ = _fit("clf", digits)
    assert get_tile_shape(clf) is None
    assert get_tile_shape(make_pipeline(MinMaxScaler(), clf)) is None
    assert get_tile_shape(_Wrapper(clf, (np.int64(4), 16))) == (4, 16)
    assert get_tile_shape(make_pipeline(MinMaxScaler(), _Wrapper(clf, [2, 8]))) == (2, 8)
    assert get_tile_shape(_Wrapper(clf, None)) is None
    assert get_tile_shape(SkMLPClassifier()) is None
    with pytest.raises(ValueError, match="powers of two"):
        get_tile_shape(_Wrapper(clf, (6, 8)))


# ------------------------------------------------------ activation registry
def test_activation_registry():
    assert set(ACTIVATIONS) == {"square", "poly", "relu", "tanh", "logistic", "identity"}
    assert set(POLYNOMIAL_ACTIVATIONS) == {"square", "poly", "identity"}
    assert Activation("square").polynomial() == (1.0, 0.0, 0.0)
    assert Activation("identity").polynomial() == (0.0, 1.0, 0.0)
    assert Activation("poly").polynomial() == (0.125, 0.5, 0.25)
    assert Activation("poly", coefs=(0.1, 1, 0)).polynomial() == (0.1, 1.0, 0.0)
    for name in ("relu", "tanh", "logistic"):
        assert Activation(name).polynomial() is None
        assert not Activation(name).is_polynomial
    x = np.linspace(-2, 2, 41)
    for name in POLYNOMIAL_ACTIVATIONS:
        act = Activation(name, coefs=(0.3, -0.2, 0.1))
        a, b, c = act.polynomial()
        np.testing.assert_allclose(act.forward(x), a * x * x + b * x + c)
    for name in ACTIVATIONS:  # derivative against central differences
        act = Activation(name)
        act.forward(x, train=True)
        h = 1e-6
        num = (Activation(name).forward(x + h) - Activation(name).forward(x - h)) / (2 * h)
        keep = np.abs(x) > 1e-3  # relu's kink
        np.testing.assert_allclose(act.backward(np.ones_like(x))[keep], num[keep], atol=1e-6)


def test_huge_inputs_raise_a_clear_error():
    import warnings

    from sklearn.datasets import load_digits

    from skhepex import MLPClassifier, MLPRegressor
    X, y = load_digits(return_X_y=True)
    X = X / 16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
        reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
        for est, method in ((clf, "predict"), (clf, "predict_proba"), (reg, "predict")):
            with pytest.raises(ValueError, match="far outside the range"):
                getattr(est, method)(X[:3] * 1e300)
