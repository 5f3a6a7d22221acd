"""Estimator tags shared by the skhepex meta-estimators."""

from sklearn.utils import get_tags


def delegate_tags(tags, estimator):
    """Copy the type, target and input tags of ``estimator`` onto ``tags``.

    ``HEPEx`` and ``HEPredictor`` behave as the network they wrap (classifier,
    regressor or transformer), so scikit-learn must see that network's tags.

    Parameters
    ----------
    tags : sklearn.utils.Tags
        The meta-estimator's tags (from ``super().__sklearn_tags__()``).
    estimator : estimator
        The wrapped (possibly unfitted) estimator.

    Returns
    -------
    tags : sklearn.utils.Tags
        ``tags``, updated in place.
    """
    sub = get_tags(estimator)
    tags.estimator_type = sub.estimator_type
    tags.classifier_tags = sub.classifier_tags
    tags.regressor_tags = sub.regressor_tags
    tags.transformer_tags = sub.transformer_tags
    tags.target_tags = sub.target_tags
    tags.input_tags = sub.input_tags
    return tags
