"""What HEPredictor wraps: Pipelines, TransformedTargetRegressor (client-side inverse)."""
import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.compose import TransformedTargetRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from skhepex import MLPRegressor, tile_report
from skhepex.he import HEPredictor
from skhepex.he.wrapping import split_estimator


def _diabetes():
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split
    X, y = load_diabetes(return_X_y=True)
    return train_test_split(X, y, random_state=0)


def test_split_estimator_parts():
    X_train, X_test, y_train, _ = _diabetes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ttr = TransformedTargetRegressor(
            regressor=make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(4,),
                                                                   max_iter=5)),
            transformer=StandardScaler())
        outer = make_pipeline(MinMaxScaler(), ttr).fit(X_train, y_train)
    parts = split_estimator(outer)
    assert isinstance(parts.network, MLPRegressor)
    assert [type(s).__name__ for _, s in parts.preprocessor.steps] == ["MinMaxScaler",
                                                                      "StandardScaler"]
    z = np.array([0.0, 1.0, -2.0])
    np.testing.assert_allclose(parts.inverse_target(z),
                               ttr.transformer_.inverse_transform(z[:, None]).ravel())


def test_transformed_target_regressor_on_diabetes():
    # the acceptance: encrypted R² within 0.01 of plaintext and >= 0.3
    X_train, X_test, y_train, y_test = _diabetes()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        spec = importlib.util.spec_from_file_location(
            "ex", Path(__file__).resolve().parents[2] / "examples"
            / "plot_encrypted_regression.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        r2_plain, r2_he = module.main()
    assert r2_he >= 0.3 and abs(r2_he - r2_plain) < 0.01


def test_predictor_of_ttr_behaves_like_a_regressor():
    X_train, X_test, y_train, y_test = _diabetes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ttr = TransformedTargetRegressor(regressor=MLPRegressor(hidden_layer_sizes=(4,),
                                                                max_iter=20, random_state=0),
                                         transformer=StandardScaler()).fit(X_train, y_train)
    he = HEPredictor(ttr, prefit=True, tile_shape=(4, 4), mode="simulate").fit()
    np.testing.assert_allclose(he.predict(X_test), ttr.predict(X_test), rtol=1e-9)
    assert not hasattr(he, "predict_proba")
    assert tile_report(he).tile_shape == (4, 4)
    from sklearn.exceptions import NotFittedError
    from sklearn.linear_model import LinearRegression
    with pytest.raises(TypeError, match="skhepex"):
        HEPredictor(TransformedTargetRegressor(regressor=LinearRegression()).fit(
            X_train, y_train), prefit=True).fit()
    with pytest.raises(NotFittedError):
        HEPredictor(TransformedTargetRegressor(regressor=MLPRegressor()), prefit=True).fit()
