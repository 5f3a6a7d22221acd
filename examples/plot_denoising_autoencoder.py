"""
Encrypted denoising with a pruned autoencoder
=============================================

A denoising autoencoder learns to map noisy digits to clean ones
(``fit(X_noisy, X_clean)``). HE-PEx prunes it, and the server denoises
encrypted images it never sees. The figure shows clean test digits, their
noisy versions and what the pruned network returns under encryption.

Run: ``python examples/plot_denoising_autoencoder.py``. The image grid is saved
to ``skhepex_out/figures/denoising.png`` under the current folder (and shown
when matplotlib has a display).
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler

from skhepex import Autoencoder, Expander, HEPEx, HEPredictor, MagnitudePruner, Permuter, TilePruner

#: Folder the figure is saved into (relative to the current folder).
FIGURES = Path("skhepex_out", "figures")


def plot_images(rows):
    """One row of 8 digit images per ``(name, images)`` pair."""
    fig, axes = plt.subplots(len(rows), 8, figsize=(8, 1.1 * len(rows)))
    for i, (name, images) in enumerate(rows):
        for j in range(8):
            axes[i, j].imshow(images[j].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            axes[i, j].axis("off")
        axes[i, 0].set_title(name, fontsize=8, loc="left")
    return fig


def main(out=FIGURES):
    """Prune a denoising autoencoder, denoise 64 test digits encrypted; save the images."""
    X = load_digits().data
    X_train, X_test = train_test_split(X, random_state=0)
    scaler = MinMaxScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    rng = np.random.RandomState(0)

    def noisy(A):
        return np.clip(A + rng.normal(0, 0.2, A.shape), 0, 1)

    X_noisy = np.vstack([noisy(X_train) for _ in range(3)])
    X_clean = np.vstack([X_train] * 3)
    dae = HEPEx(Autoencoder(hidden_layer_sizes=(64,), tol=1e-3, random_state=0),
                steps=[("prune", MagnitudePruner(sparsity=0.8, scope="global",
                                                 fine_tune_iter=10)),
                       ("permute", Permuter(random_state=0)),
                       ("tiles", TilePruner(tile_sparsity=0.5, criterion="taylor",
                                            scope="global", regrow=True,
                                            fine_tune_iter=10, random_state=0)),
                       ("expand", Expander(fine_tune_iter=10))],
                tile_shape=(8, 8))
    dae.fit(X_noisy, X_clean)

    N_test = noisy(X_test[:64])
    he = HEPredictor(dae, prefit=True).fit()
    denoised = he.predict(N_test)                      # encrypted end to end
    mse_noisy = np.mean((N_test - X_test[:64]) ** 2)
    mse_he = np.mean((denoised - X_test[:64]) ** 2)
    fig = plot_images([("clean", X_test), ("noisy", N_test), ("HE denoised", denoised)])
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(out) / "denoising.png", dpi=100)
        print(f"saved {Path(out) / 'denoising.png'}")

    print(f"{dae.n_ciphertexts_} of {dae.n_ciphertexts_dense_} weight ciphertexts")
    print(f"MSE noisy {mse_noisy:.4f} -> denoised under encryption {mse_he:.4f} "
          f"({100 * (1 - mse_he / mse_noisy):.0f}% lower)")
    print(f"max |encrypted - plaintext| = {np.abs(denoised - dae.predict(N_test)).max():.2e}")
    return mse_noisy, mse_he


if __name__ == "__main__":
    main()
    plt.show()  # a window when matplotlib has a display; nothing otherwise
