"""
Encrypted regression with a target transform
=============================================

Targets far from unit scale (the diabetes progression score is 25-346) make a
network with square activations train badly.  scikit-learn's
``TransformedTargetRegressor`` standardises them for training; under
encryption the network still computes the standardised prediction, and the
client applies the inverse transform after decryption, in plaintext.

Run: ``python examples/plot_encrypted_regression.py``
"""

from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skhepex import HEPredictor, MLPRegressor


def main(n_samples=None):
    """Fit on diabetes, predict the test split under encryption, return both R²."""
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    model = TransformedTargetRegressor(
        regressor=make_pipeline(
            StandardScaler(),
            MLPRegressor(hidden_layer_sizes=(16,), alpha=1e-2, learning_rate_init=1e-3,
                         max_iter=200, tol=1e-3, random_state=0)),
        transformer=StandardScaler(),
    ).fit(X_train, y_train)
    X_test, y_test = X_test[:n_samples], y_test[:n_samples]
    he = HEPredictor(model, prefit=True).fit()       # client-side scalers, encrypted net
    r2_plain = model.score(X_test, y_test)
    r2_he = he.score(X_test, y_test)
    print(f"test R², plaintext {r2_plain:.4f}, encrypted {r2_he:.4f} "
          f"(tile {he.tile_shape_}, N={he.params_.poly_modulus_degree})")
    return r2_plain, r2_he


if __name__ == "__main__":
    main()
