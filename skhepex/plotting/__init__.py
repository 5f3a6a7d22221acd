"""Plots in scikit-learn's *Display* style (matplotlib is an optional extra).

Two displays:

- :class:`TileMapDisplay` draws the tile grid of every weight layer (kept vs
  empty tiles, optionally coloured by tile norm), one subplot per layer and one
  row per estimator, straight from :class:`~skhepex.tiling.TileLayout`.
- :class:`ParetoDisplay` draws weight ciphertexts (non-zero tiles) against a
  score, one marker set per pruning variant, with the Pareto front
  highlighted; from ``GridSearchCV.cv_results_`` or from benchmark JSON.

Like scikit-learn's displays, each has a ``plot(ax=None, ...)`` method that
returns the display with its matplotlib objects in ``ax_`` and ``figure_``,
and ``from_*`` class methods that compute the data and plot in one call.
matplotlib is imported only inside the plotting methods (importing this
package does not import it); install it with ``pip install "skhepex[plot]"``.

Benchmark JSON is read with :func:`skhepex.experiments.read_records`.
"""

from .pareto import ParetoDisplay, pareto_front
from .tile_map import TileMapDisplay

__all__ = ["TileMapDisplay", "ParetoDisplay", "pareto_front"]
