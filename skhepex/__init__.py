"""skhepex: HE-PEx pruning and encrypted CKKS inference, scikit-learn style.

Networks (:class:`MLPClassifier`, :class:`MLPRegressor`, :class:`Autoencoder`,
:class:`CNNClassifier`) are NumPy estimators whose weights are packed into
*tiles* under homomorphic encryption; :func:`tile_report` counts them.

The public names below are loaded on first access (PEP 562), so that
``import skhepex`` and the ``skhepex`` command start fast: TenSEAL is imported
only when :class:`HEPredictor`, :class:`HECostReport` or
:func:`he_cost_report` (or :mod:`skhepex.he`) is first used, and matplotlib
only when a display plots.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

try:
    __version__ = version("skhepex")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

#: Public name -> subpackage that defines it.
_LAZY_NAMES = {
    "Autoencoder": "estimators",
    "CNNClassifier": "estimators",
    "MLPClassifier": "estimators",
    "MLPRegressor": "estimators",
    "TileLayout": "tiling",
    "TileReport": "tiling",
    "tile_report": "tiling",
    "HEPredictor": "he",
    "HECostReport": "he",
    "he_cost_report": "he",
    "Expander": "pruning",
    "HEPEx": "pruning",
    "MagnitudePruner": "pruning",
    "Permuter": "pruning",
    "TilePruner": "pruning",
    "ciphertext_scorer": "pruning",
    "fewest_ciphertexts_within": "pruning",
    "hepex_scoring": "pruning",
    "ParetoDisplay": "plotting",
    "TileMapDisplay": "plotting",
}

#: Subpackages reachable as attributes (``skhepex.pruning``) after ``import skhepex``.
_SUBMODULES = ("cli", "estimators", "experiments", "he", "nn", "plotting", "pruning",
               "tiling")

__all__ = ["Autoencoder", "CNNClassifier", "MLPClassifier", "MLPRegressor",
           "TileLayout", "TileReport", "tile_report", "__version__",
           "HEPredictor", "HECostReport", "he_cost_report",
           "Expander", "HEPEx", "MagnitudePruner", "Permuter", "TilePruner",
           "ciphertext_scorer", "fewest_ciphertexts_within", "hepex_scoring",
           "ParetoDisplay", "TileMapDisplay"]

if TYPE_CHECKING:  # pragma: no cover - for static analysis only
    from .estimators import Autoencoder, CNNClassifier, MLPClassifier, MLPRegressor
    from .he import HECostReport, HEPredictor, he_cost_report
    from .plotting import ParetoDisplay, TileMapDisplay
    from .pruning import (Expander, HEPEx, MagnitudePruner, Permuter, TilePruner,
                          ciphertext_scorer, fewest_ciphertexts_within, hepex_scoring)
    from .tiling import TileLayout, TileReport, tile_report


def __getattr__(name):
    """Import a public name or a subpackage on first access (PEP 562).

    Parameters
    ----------
    name : str
        A name of ``__all__`` or a subpackage name (e.g. ``"he"``).

    Returns
    -------
    value : object
        The public object or the subpackage, cached in the module's namespace.

    Raises
    ------
    AttributeError
        If ``name`` is neither.
    """
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    """The module's names, including those not loaded yet.

    Returns
    -------
    names : list of str
        Sorted names of the module namespace, ``__all__`` and the subpackages.
    """
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
