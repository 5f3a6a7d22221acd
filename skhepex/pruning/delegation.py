"""Methods of :class:`~skhepex.pruning.HEPEx` delegated to its pruned network."""

from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

__all__ = ["NetworkDelegationMixin"]


def _estimator_has(attr):
    def check(self):
        return hasattr(self.__skhepex_network__(), attr)
    return check


class NetworkDelegationMixin:
    """``predict``, ``score``, ... of the fitted network ``estimator_``.

    A method is available when the wrapped network has it
    (``__skhepex_network__()``, the unfitted ``estimator`` before ``fit``).
    """

    @available_if(_estimator_has("predict"))
    def predict(self, X):
        """Predict with the pruned network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to predict (4-D images for a CNN).

        Returns
        -------
        y_pred : ndarray
            The pruned network's predictions: labels, targets or
            reconstructions.
        """
        check_is_fitted(self)
        return self.estimator_.predict(X)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of the pruned network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples whose probabilities the pruned classifier computes.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probability of every class of ``classes_``.
        """
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log class probabilities of the pruned network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples whose log-probabilities the pruned classifier computes.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Natural logarithm of :meth:`predict_proba`.
        """
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """Raw outputs (logits) of the pruned network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples the pruned classifier scores.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            The network's ``decision_function``.
        """
        check_is_fitted(self)
        return self.estimator_.decision_function(X)

    @available_if(_estimator_has("transform"))
    def transform(self, X):
        """Hidden (or code) representation computed by the pruned network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to represent with the pruned network.

        Returns
        -------
        Xt : ndarray of shape (n_samples, n_hidden)
            The network's ``transform`` output.
        """
        check_is_fitted(self)
        return self.estimator_.transform(X)

    @available_if(_estimator_has("inverse_transform"))
    def inverse_transform(self, X):
        """Decode codes with the pruned network (autoencoders).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_code)
            Codes of the pruned autoencoder (its :meth:`transform` output).

        Returns
        -------
        X_rec : ndarray of shape (n_samples, n_features)
            Reconstructions.
        """
        check_is_fitted(self)
        return self.estimator_.inverse_transform(X)

    @available_if(_estimator_has("transform"))
    def fit_transform(self, X, y=None):
        """Fit, then transform ``X`` with the pruned network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like, default=None
            Targets.

        Returns
        -------
        Xt : ndarray
            ``self.fit(X, y).transform(X)``.
        """
        return self.fit(X, y).transform(X)

    @available_if(_estimator_has("score"))
    def score(self, X, y=None, sample_weight=None):
        """Score of the pruned network (accuracy, R², reconstruction R²).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.
        y : array-like, default=None
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            The network's ``score``.
        """
        check_is_fitted(self)
        if sample_weight is None:
            return self.estimator_.score(X, y)
        return self.estimator_.score(X, y, sample_weight=sample_weight)

    @property
    def classes_(self):
        """ndarray : Class labels of the network."""
        return self.estimator_.classes_

    @property
    def n_features_in_(self):
        """int : Number of input features."""
        return self.estimator_.n_features_in_
