"""skhepex: HE-PEx pruning and encrypted CKKS inference, scikit-learn style.

Networks (:class:`MLPClassifier`, :class:`MLPRegressor`, :class:`Autoencoder`,
:class:`CNNClassifier`) are NumPy estimators whose weights are packed into
*tiles* under homomorphic encryption; :func:`tile_report` counts them.
"""

from importlib.metadata import PackageNotFoundError, version

from .estimators import Autoencoder, CNNClassifier, MLPClassifier, MLPRegressor
from .he import HECostReport, HEPredictor, he_cost_report
from .plotting import ParetoDisplay, TileMapDisplay
from .tiling import TileLayout, TileReport, tile_report
from .pruning import (Expander, HEPEx, MagnitudePruner, Permuter, TilePruner,
                      ciphertext_scorer, fewest_ciphertexts_within, hepex_scoring)

try:
    __version__ = version("skhepex")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["Autoencoder", "CNNClassifier", "MLPClassifier", "MLPRegressor",
           "TileLayout", "TileReport", "tile_report", "__version__",
           "HEPredictor", "HECostReport", "he_cost_report",
           "Expander", "HEPEx", "MagnitudePruner", "Permuter", "TilePruner",
           "ciphertext_scorer", "fewest_ciphertexts_within", "hepex_scoring",
           "ParetoDisplay", "TileMapDisplay"]
