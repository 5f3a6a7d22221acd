"""scikit-learn's estimator checks on every network estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skhepex import Autoencoder, CNNClassifier, MLPClassifier, MLPRegressor

SMALL = dict(max_iter=100, learning_rate_init=0.01, random_state=0)
ESTIMATORS = [
    MLPClassifier(hidden_layer_sizes=(8,), **SMALL),
    MLPRegressor(hidden_layer_sizes=(8,), **SMALL),
    Autoencoder(hidden_layer_sizes=(4,), **SMALL),
    CNNClassifier(conv_channels=(2,), **SMALL),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check):
    check(estimator)
