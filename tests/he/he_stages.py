"""Shared helpers of the ``skhepex.he`` tests (imported as ``from he_stages import ...``).

Not a test module: random stage dicts with all-zero tiles (``make_stages``),
the stage cases the engine tests share, a fixed input matrix, and a tiny
fitted network for the modules that start from an estimator (stages,
planner, report).
"""
import warnings

import numpy as np

SQ = (1.0, 0.0, 0.0)

CASES = [  # (sizes, tile, activations)
    ([13, 5], (4, 8), [None]),
    ([13, 7, 5], (4, 8), [SQ, None]),
    ([13, 7, 5], (8, 8), [(0.5, -0.3, 0.2), SQ]),
    ([13, 7, 9, 5], (8, 4), [SQ, None, (-0.25, 0.5, 0.1)]),     # depth 5
    ([13, 7, 9, 5], (8, 8), [SQ, (-0.25, 0.5, 0.1), None]),     # depth 6
]


def make_stages(sizes, tile, acts, seed=0, p_zero=0.3, force_zero=True):
    """Random W/WT/W... stages with random all-zero tiles (tile_mask False)."""
    rng = np.random.default_rng(seed)
    t1, t2 = tile
    stages = []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        orient = "W" if l % 2 == 0 else "WT"
        r, c = (t1, t2) if orient == "W" else (t2, t1)
        W = rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in))
        P, Q = -(-n_out // r), -(-n_in // c)
        mask = rng.random((P, Q)) > p_zero
        mask[:, 0] = True                      # keep every tile-row alive
        if force_zero and P * Q > 2:
            mask[-1, -1] = False               # at least one zero tile
        for p in range(P):
            for q in range(Q):
                if not mask[p, q]:
                    W[p * r:(p + 1) * r, q * c:(q + 1) * c] = 0.0
        stages.append(dict(name=f"layer{l}", matrix=W, bias=rng.normal(0, 0.1, n_out),
                           orientation=orient, block_shape=(r, c), tile_mask=mask,
                           activation=acts[l]))
    return stages


def encrypted_round_trip(plan, X):
    """``(decrypted outputs, server)`` of one encrypt -> evaluate -> decrypt of ``X``.

    The server is the client's :meth:`~skhepex.he.Client.server_model` (public keys).
    """
    from skhepex.he import Client

    client = Client(plan)
    server = client.server_model()
    return client.decrypt(server.evaluate(client.encrypt(X))), server


def make_X(n=70, n_features=13, seed=42):
    """Inputs in [0, 1); 70 rows is more than one batch at (8, 8) tiles and N=8192."""
    return np.random.default_rng(seed).random((n, n_features))


def fit_tiny_mlp(activation="square", hidden=(7,), seed=0, **kw):
    """A small fitted ``MLPClassifier`` (13 features, 3 classes, a few iterations)."""
    from skhepex import MLPClassifier

    rng = np.random.default_rng(seed)
    X = rng.random((60, 13))
    y = (X[:, 0] > 0.5).astype(int) + (X[:, 1] > 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MLPClassifier(hidden_layer_sizes=hidden, activation=activation, max_iter=5,
                             random_state=seed, **kw).fit(X, y), X


def fit_digits_mlp(digits, hidden, max_iter):
    """A square-activation ``MLPClassifier`` fitted (quietly) on the digits fixture's train split."""
    from skhepex import MLPClassifier

    X_train, _, y_train, _ = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MLPClassifier(hidden_layer_sizes=hidden, max_iter=max_iter,
                             random_state=0).fit(X_train, y_train)
