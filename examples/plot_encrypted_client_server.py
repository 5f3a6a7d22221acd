"""
Encrypted prediction with an explicit client/server split
=========================================================

The client owns the data and the secret key; the server owns nothing secret.
Everything that crosses between them is bytes: the packed model with the
public evaluation keys (client -> server, once), encrypted batches
(client -> server) and encrypted results (server -> client). The server side
is rebuilt from bytes only and cannot decrypt.

Run: ``python examples/plot_encrypted_client_server.py`` (it prints only; no
figure).
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from skhepex import HEPEx, HEPredictor, MagnitudePruner, MLPClassifier, Permuter, TilePruner
from skhepex.he import ServerModel


def main():
    """Fit, split into client and server, run one round trip through bytes."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
    model = make_pipeline(
        MinMaxScaler(),
        HEPEx(MLPClassifier(hidden_layer_sizes=(64,), tol=1e-3, random_state=0),
              steps=[("prune", MagnitudePruner(sparsity=0.8, scope="global",
                                               fine_tune_iter=10)),
                     ("permute", Permuter(random_state=0)),
                     ("tiles", TilePruner(tile_sparsity=0.5, criterion="taylor",
                                          scope="global", regrow=True,
                                          fine_tune_iter=10, random_state=0))],
              tile_shape=(8, 8)),
    )
    model.fit(X_train, y_train)

    # --- client: keys, packing; the pipeline's scaler stays on the client
    he = HEPredictor(model, prefit=True).fit()
    server_bytes = he.server_.serialize()        # public context + packed model
    print(f"server package: {len(server_bytes) / 2**20:.1f} MB")

    # --- server: rebuilt from bytes, no secret key
    server = ServerModel.load(server_bytes)

    # --- one round trip
    X_new = X_test[:32]
    request = he.encrypt(X_new).serialize()               # client -> server
    result = server.evaluate(server.load_batch(request))  # server computes blind
    response = result.serialize()                         # server -> client
    logits = he.decrypt(he.load_result(response))         # client decrypts
    y_he = model.classes_[np.argmax(logits, axis=1)]

    y_plain = model.predict(X_new)
    print(f"request {len(request) / 2**20:.1f} MB, response {len(response) / 2**20:.1f} MB")
    print(f"encrypted == plaintext predictions: {np.mean(y_he == y_plain):.0%}; "
          f"accuracy {np.mean(y_he == y_test[:32]):.3f}")
    print(f"server holds a secret key: {server.context.has_secret_key()}")
    print(he.report_)
    return y_he, y_plain


if __name__ == "__main__":
    main()
