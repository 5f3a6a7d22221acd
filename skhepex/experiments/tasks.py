"""The learning tasks of the experiments: digits data, splits, network and metric."""

from dataclasses import dataclass, field

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler

from ..estimators import Autoencoder, CNNClassifier, MLPClassifier

__all__ = ["TASKS", "Task", "load_task", "FINE_TUNE_ITER"]

# task name -> description (documented in skhepex/experiments/__init__.py)
TASKS = {
    "mlp": "classification with an MLP",
    "cnn": "classification with a CNN",
    "ae": "image compression with an autoencoder",
    "dae": "denoising (Gaussian noise, sigma 0.2) with an autoencoder",
}

# fine-tuning epochs per step and task (documented in skhepex/experiments/__init__.py)
FINE_TUNE_ITER = {"mlp": 30, "cnn": 10, "ae": 60, "dae": 40}

_N_CLASSES = 10


@dataclass
class Task:
    """A learning task on digits: data splits, the network and its metric.

    Parameters
    ----------
    name : str
        Task name, one of :data:`TASKS`.
    description : str
        Human-readable description, including the network architecture.
    estimator : estimator
        Unfitted network of the task.
    metric : str
        Name of ``estimator.score`` (``"accuracy"``, ``"R2"`` or
        ``"R2 (clean)"``).
    X_train : ndarray of shape (n_train, 64)
        Training samples (scaled to [0, 1]).
    y_train : ndarray or None
        Training targets: labels, clean images (denoising) or ``None``
        (compression, the targets are the inputs).
    X_val : ndarray of shape (n_val, 64)
        Validation part of the training data, used to select models.
    y_val : ndarray or None
        Validation targets.
    X_test : ndarray of shape (n_test, 64)
        Held-out samples, used only to report.
    y_test : ndarray or None
        Held-out targets.
    X_fit : ndarray of shape (n_train - n_val, 64), default=None
        Training data minus the validation part, used to fit the candidates.
    y_fit : ndarray or None, default=None
        Targets of ``X_fit``.
    """

    name: str
    description: str
    estimator: object
    metric: str
    X_train: np.ndarray
    y_train: object
    X_val: np.ndarray
    y_val: object
    X_test: np.ndarray
    y_test: object
    X_fit: np.ndarray = field(repr=False, default=None)
    y_fit: object = field(repr=False, default=None)


def _noisy(X, rng, sigma=0.2):
    return np.clip(X + rng.normal(0.0, sigma, X.shape), 0.0, 1.0)


def _architecture(est, n_in, n_out):
    """``"64-128-10"`` for an MLP / autoencoder, ``"conv(16)-conv(32)-dense"`` for a CNN."""
    hidden = [int(h) for h in np.atleast_1d(est.hidden_layer_sizes)]
    if isinstance(est, CNNClassifier):
        convs = [f"conv({int(c)})" for c in np.atleast_1d(est.conv_channels)]
        return "-".join(convs + [f"dense({h})" for h in hidden] + ["dense"])
    return "-".join(str(n) for n in [n_in, *hidden, n_out])


def _upsample(X, size):
    """Digits images (n, 64) resized bilinearly to (n, size * size)."""
    from scipy.ndimage import zoom

    imgs = X.reshape(-1, 8, 8)
    return np.stack([zoom(im, size / 8, order=1) for im in imgs]).reshape(len(X), -1)


def load_task(name, random_state=0, *, estimator_params=None, image_size=8):
    """Build one task on digits (MinMax-scaled, 25% held out, stratified).

    Parameters
    ----------
    name : {"mlp", "cnn", "ae", "dae"}
        Classification with an MLP 64-128-10 or the default CNN, image
        compression with an autoencoder 64-32-64, or denoising (Gaussian
        noise, sigma 0.2, clipped) with an autoencoder 64-64-64. All
        networks use the ``"square"`` activation.
    random_state : int, default=0
        Seed of the splits, the noise and the networks.
    estimator_params : dict, default=None
        Parameters set on the task's network with ``set_params``, e.g.
        ``{"hidden_layer_sizes": (128, 128), "max_iter": 50}`` for a deeper
        network; the description follows the resulting architecture.
    image_size : int, default=8
        Side of the images: the 8 x 8 digits are resized bilinearly to
        ``image_size x image_size`` (e.g. 16: 256 features, a larger first
        layer) before scaling; a CNN infers the square image shape.

    Returns
    -------
    task : Task
        ``X_fit``/``y_fit`` (training minus a 20% validation part) train the
        candidates; ``X_val`` selects among them; ``X_test`` reports.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`TASKS`.
    """
    if name not in TASKS:
        raise ValueError(f"Unknown task {name!r}; expected one of {sorted(TASKS)}.")
    X, y = load_digits(return_X_y=True)
    if image_size != 8:
        X = _upsample(X, int(image_size))
    n_features = X.shape[1]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=random_state)
    scaler = MinMaxScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    rng = np.random.RandomState(random_state)
    if name == "mlp":
        est = MLPClassifier(hidden_layer_sizes=(128,), activation="square",
                            random_state=random_state)
        kind, net, metric, n_out = "classification", "MLP", "accuracy", _N_CLASSES
    elif name == "cnn":
        est = CNNClassifier(activation="square", random_state=random_state)
        kind, net, metric, n_out = "classification", "CNN", "accuracy", _N_CLASSES
    elif name == "ae":
        est = Autoencoder(hidden_layer_sizes=(32,), activation="square",
                          random_state=random_state)
        kind, net, metric, n_out = "image compression", "autoencoder", "R2", n_features
        y_train, y_test = None, None
    else:  # "dae"
        est = Autoencoder(hidden_layer_sizes=(64,), activation="square",
                          random_state=random_state)
        kind, net, metric, n_out = "denoising", "autoencoder", "R2 (clean)", n_features
        clean_train, clean_test = X_train, X_test
        X_train = np.vstack([_noisy(clean_train, rng) for _ in range(3)])
        y_train = np.vstack([clean_train] * 3)
        X_test, y_test = _noisy(clean_test, rng), clean_test
    if estimator_params:
        est.set_params(**estimator_params)
    desc = f"{kind}, {net} {_architecture(est, n_features, n_out)}"
    stratify = y_train if metric == "accuracy" else None
    if y_train is None:
        X_fit, X_val = train_test_split(X_train, test_size=0.2, random_state=random_state)
        y_fit = y_val = None
    else:
        X_fit, X_val, y_fit, y_val = train_test_split(
            X_train, y_train, test_size=0.2, stratify=stratify, random_state=random_state)
    return Task(name, desc, est, metric, X_train, y_train, X_val, y_val, X_test, y_test,
                X_fit, y_fit)
