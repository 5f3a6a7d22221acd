"""
A pruned CNN under encryption, with its tile maps
=================================================

Convolution and average pooling are linear: under HE each block is one
matrix, cut into tiles. A convolution's pruning unit is a block of kernels
whose rows and columns share tiles; HE-PEx empties whole units, and the engine
skips every tile they leave empty. The tile maps show the kept tiles (filled)
of every layer, before and after pruning.

Run: ``python examples/plot_cnn.py``. The tile maps are saved to
``skhepex_out/figures/cnn_tile_maps.png`` under the current folder (and shown
when matplotlib has a display).
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler

from skhepex import (CNNClassifier, Expander, HEPEx, HEPredictor, MagnitudePruner, Permuter,
                     TileMapDisplay, TilePruner, tile_report)

#: Folder the figure is saved into (relative to the current folder).
FIGURES = Path("skhepex_out", "figures")


def main(out=FIGURES, n_samples=32):
    """Prune a CNN, run it encrypted on ``n_samples`` test images; save the tile maps."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
    scaler = MinMaxScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    cnn = HEPEx(CNNClassifier(conv_channels=(8, 16), tol=1e-3, random_state=0),
                steps=[("prune", MagnitudePruner(sparsity=0.7, scope="global",
                                                 fine_tune_iter=10)),
                       ("permute", Permuter(random_state=0)),
                       ("tiles", TilePruner(tile_sparsity=0.5, criterion="taylor",
                                            scope="global", regrow=True,
                                            fine_tune_iter=10, random_state=0)),
                       ("expand", Expander(fine_tune_iter=10))],
                tile_shape=(8, 8))
    cnn.fit(X_train, y_train)
    print(f"test accuracy: dense {cnn.dense_estimator_.score(X_test, y_test):.4f}, "
          f"pruned {cnn.score(X_test, y_test):.4f}")
    print(tile_report(cnn))

    disp = TileMapDisplay.from_estimators(
        {"dense": cnn.dense_estimator_, "HE-PEx": cnn}, tile_shape=(8, 8))
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        disp.figure_.savefig(Path(out) / "cnn_tile_maps.png", dpi=100)
        print(f"saved {Path(out) / 'cnn_tile_maps.png'}")

    he = HEPredictor(cnn, prefit=True).fit()
    y_he = he.predict(X_test[:n_samples])
    print(f"encrypted == plaintext on {n_samples} images: "
          f"{np.mean(y_he == cnn.predict(X_test[:n_samples])):.0%}")
    print(he.report_)
    return y_he


if __name__ == "__main__":
    main()
    plt.show()  # a window when matplotlib has a display; nothing otherwise
