"""HE-PEx pruning: magnitude pruning, permutation, tile pruning and expansion.

Each step takes a fitted network and the training data and returns a new
fitted network; :class:`HEPEx` chains them after dense training.
"""

from .expander import Expander
from .hepex import HEPEx
from .magnitude import MagnitudePruner
from .permuter import Permuter
from .selection import ciphertext_scorer, fewest_ciphertexts_within, hepex_scoring
from .tile_pruner import TilePruner

__all__ = ["Expander", "HEPEx", "MagnitudePruner", "Permuter", "TilePruner",
           "ciphertext_scorer", "fewest_ciphertexts_within", "hepex_scoring"]
